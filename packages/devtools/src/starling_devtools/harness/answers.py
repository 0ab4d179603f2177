"""Every answer a tool's callers got, by operation: statuses, latencies, and requests never answered."""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in 0..1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def retry_later(response: httpx.Response) -> bool:
    """A 503 as the spec has it: a JSON `detail` saying why, and a Retry-After in whole seconds."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return False
    return isinstance(detail, str) and bool(detail) and response.headers.get("retry-after", "").isdigit()


@dataclass
class Recorder:
    """Every answer by label (an operation such as "users.register"): statuses, latencies, failures."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # The first few answers nobody expected, kept whole enough to say what went wrong.
    samples: list[str] = field(default_factory=list)
    max_samples: int = 10
    # The first few 503s without what the spec promises a client that is to try again: a JSON
    # `detail` and a Retry-After in whole seconds.
    bad_503: list[str] = field(default_factory=list)

    async def request(
        self, client: httpx.AsyncClient, label: str, method: str, url: str, **kwargs: Any
    ) -> httpx.Response | None:
        """Send one request; None when it got no answer at all (refused, reset, timed out)."""
        started = time.perf_counter()
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            self.latencies[label].append(time.perf_counter() - started)
            self.errors[(label, type(exc).__name__)] += 1
            self.sample(f"{label}: {type(exc).__name__}: {exc}")
            return None
        self.latencies[label].append(time.perf_counter() - started)
        self.statuses[(label, response.status_code)] += 1
        if response.status_code >= 500:
            self.sample(f"{label}: {response.status_code} {response.text[:200]}")
        if response.status_code == 503 and not retry_later(response) and len(self.bad_503) < 5:
            self.bad_503.append(f"{label}: {response.headers} {response.text[:100]}")
        return response

    def sample(self, text: str) -> None:
        if len(self.samples) < self.max_samples:
            self.samples.append(text)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def count(self, *, label: str | None = None, statuses: Callable[[int], bool] = lambda _: True) -> int:
        return sum(
            n for (name, status), n in self.statuses.items() if (label in (None, name)) and statuses(status)
        )

    def server_errors(self) -> int:
        return self.count(statuses=lambda status: status >= 500)

    def failures(self) -> int:
        return sum(self.errors.values())

    def unexpected(self, expected: Mapping[str, set[int]]) -> Counter[tuple[str, int]]:
        """Answers whose status is not among their label's expected ones (labels not listed: any 2xx)."""
        return Counter(
            {
                (label, status): n
                for (label, status), n in self.statuses.items()
                if status not in expected.get(label, set(range(200, 300)))
            }
        )

    def table(self) -> list[str]:
        """One line per label: how many, which statuses, and latency percentiles in milliseconds."""
        lines = []
        for label in sorted(self.latencies):
            timings = self.latencies[label]
            statuses = ", ".join(
                f"{status}x{n}" for (name, status), n in sorted(self.statuses.items()) if name == label
            )
            failed = ", ".join(
                f"{kind}x{n}" for (name, kind), n in sorted(self.errors.items()) if name == label
            )
            lines.append(
                f"{label:<22} n={len(timings):<6} [{statuses}{'; ' + failed if failed else ''}]  "
                f"p50={percentile(timings, 0.5) * 1000:.0f}ms p99={percentile(timings, 0.99) * 1000:.0f}ms "
                f"max={max(timings) * 1000:.0f}ms"
            )
        return lines


@contextlib.asynccontextmanager
async def http_client(*, connections: int, seconds: float) -> AsyncIterator[httpx.AsyncClient]:
    """A client for many concurrent callers; no answer within `seconds` is a failure, not a wait."""
    # An idle connection is dropped well before uvicorn's 5 s keep-alive timeout closes it: at equal
    # timeouts a request can go out on a connection the server is closing, and it ends with no answer.
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
    )
    async with httpx.AsyncClient(timeout=seconds, limits=limits) as client:
        yield client


@contextlib.asynccontextmanager
async def http_clients(
    count: int, *, connections: int, seconds: float
) -> AsyncIterator[list[httpx.AsyncClient]]:
    """`count` clients, one a caller. httpcore matches a request to a connection in time that grows with
    the pool's connections times the requests waiting (encode/httpcore PR 1035, open), so one pool that
    50 callers shared spent half the load's time there and drove the services at half Locust's rate."""
    async with contextlib.AsyncExitStack() as stack:
        opened = [http_client(connections=connections, seconds=seconds) for _ in range(count)]
        yield [await stack.enter_async_context(client) for client in opened]
