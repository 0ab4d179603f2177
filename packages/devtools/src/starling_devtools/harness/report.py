"""A run's outcome: a list of checks, each with the figures that decided it, printed as a short report.

Any failed check, or a run that checked nothing, makes the exit code non-zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figures: str

    @property
    def line(self) -> str:
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.figures}"


def check(name: str, ok: object, figures: str) -> Check:
    return Check(name, bool(ok), figures)


def render(title: str, checks: Sequence[Check], notes: Sequence[str] = ()) -> str:
    passed = sum(item.ok for item in checks)
    return "\n".join(
        [f"== {title} ==", *notes, *(item.line for item in checks), f"{passed}/{len(checks)} checks passed"]
    )


def exit_code(checks: Sequence[Check]) -> int:
    return 0 if checks and all(item.ok for item in checks) else 1
