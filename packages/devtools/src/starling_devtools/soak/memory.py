"""Each service's memory over the soak: sampled while it runs, marked after the warm-up and at the end."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from starling_devtools.harness import Check, Running, check

MIB = 1024 * 1024


@dataclass(frozen=True)
class MemoryBound:
    """Growth allowed from the warm-up sample to the end: `absolute_mib` or `fraction`, the larger."""

    absolute_mib: float = 64.0
    fraction: float = 0.25

    def allowed(self, warm: int) -> int:
        return int(max(self.absolute_mib * MIB, self.fraction * warm))

    def holds(self, warm: int, end: int) -> bool:
        return end - warm <= self.allowed(warm)

    def describe(self) -> str:
        return f"growth from warm-up to end under max({self.absolute_mib:.0f} MiB, {self.fraction:.0%})"


@dataclass
class MemorySampler:
    """RSS of each service (its processes together) every `interval` seconds; the peak and marks kept."""

    running: Mapping[str, Running]
    interval: float = 1.0
    peak: dict[str, int] = field(default_factory=dict)
    marks: dict[str, dict[str, int]] = field(default_factory=dict)

    def mark(self, name: str) -> dict[str, int]:
        sample = {service: item.rss() for service, item in self.running.items()}
        self.marks[name] = sample
        self._keep_peak(sample)
        return sample

    async def run(self) -> None:
        while True:  # rss() reads a process that is gone as 0
            self._keep_peak({service: item.rss() for service, item in self.running.items()})
            await asyncio.sleep(self.interval)

    def _keep_peak(self, sample: Mapping[str, int]) -> None:
        for service, value in sample.items():
            self.peak[service] = max(self.peak.get(service, 0), value)

    def checks(self, bound: MemoryBound, *, warm: str, end: str) -> list[Check]:
        checks = []
        for service in self.running:
            before, after = self.marks[warm][service], self.marks[end][service]
            checks.append(
                check(
                    f"memory of {service}",
                    bound.holds(before, after),
                    f"RSS {before / MIB:.1f} MiB after warm-up -> {after / MIB:.1f} MiB at the end "
                    f"({(after - before) / MIB:+.1f} MiB, allowed +{bound.allowed(before) / MIB:.0f} MiB), "
                    f"peak {self.peak[service] / MIB:.1f} MiB",
                )
            )
        return checks
