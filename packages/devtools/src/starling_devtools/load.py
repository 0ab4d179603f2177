"""What the soak and the fault runs share: recording answers, checks with figures, memory, databases.

Both tools drive real service processes (see `services.py`) over HTTP with httpx, keep exact books of
what was accepted, and end by comparing those books with the databases themselves. A run's outcome is
a list of `Check`s, each with the figures that decided it, printed as a short report; any failed check
makes the exit code non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from starling_devtools import services

MIB = 1024 * 1024


# --- answers ---------------------------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in 0..1); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass
class Recorder:
    """Every answer by label (an operation such as "users.register"): statuses, latencies, failures."""

    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: defaultdict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    # The first few answers nobody expected, kept whole enough to say what went wrong.
    samples: list[str] = field(default_factory=list)
    max_samples: int = 10

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


# --- checks and the report -----------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    figures: str

    @property
    def line(self) -> str:
        return f"[{'PASS' if self.ok else 'FAIL'}] {self.name}: {self.figures}"


def check(name: str, ok: bool, figures: str) -> Check:
    return Check(name, bool(ok), figures)


def render(title: str, checks: Sequence[Check], notes: Sequence[str] = ()) -> str:
    passed = sum(check.ok for check in checks)
    lines = [f"== {title} ==", *notes, *(check.line for check in checks)]
    lines.append(f"{passed}/{len(checks)} checks passed")
    return "\n".join(lines)


def exit_code(checks: Sequence[Check]) -> int:
    return 0 if checks and all(check.ok for check in checks) else 1


# --- memory ----------------------------------------------------------------------------------------


def rss(pid: int) -> int:
    """Resident set size of process `pid`, in bytes."""
    return int(psutil.Process(pid).memory_info().rss)


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
    """RSS of each process every `interval` seconds while it runs; the peak and named samples kept."""

    pids: Mapping[str, int]
    interval: float = 1.0
    peak: dict[str, int] = field(default_factory=dict)
    marks: dict[str, dict[str, int]] = field(default_factory=dict)

    def mark(self, name: str) -> dict[str, int]:
        sample = {service: rss(pid) for service, pid in self.pids.items()}
        self.marks[name] = sample
        self._keep_peak(sample)
        return sample

    async def run(self) -> None:
        while True:
            with contextlib.suppress(psutil.Error):
                self._keep_peak({service: rss(pid) for service, pid in self.pids.items()})
            await asyncio.sleep(self.interval)

    def _keep_peak(self, sample: Mapping[str, int]) -> None:
        for service, value in sample.items():
            self.peak[service] = max(self.peak.get(service, 0), value)


def memory_checks(sampler: MemorySampler, bound: MemoryBound, *, warm: str, end: str) -> list[Check]:
    checks = []
    for service in sampler.pids:
        before, after = sampler.marks[warm][service], sampler.marks[end][service]
        checks.append(
            check(
                f"memory of {service}",
                bound.holds(before, after),
                f"RSS {before / MIB:.1f} MiB after warm-up -> {after / MIB:.1f} MiB at the end "
                f"({(after - before) / MIB:+.1f} MiB, allowed +{bound.allowed(before) / MIB:.0f} MiB), "
                f"peak {sampler.peak[service] / MIB:.1f} MiB",
            )
        )
    return checks


# --- processes and polling -------------------------------------------------------------------------


def start_logged(service: services.Service, log: Path) -> services.Running:
    """Start a service with its output appended to `log`; `exec` keeps the pid the service's own."""
    command = shlex.join(services.command(service))
    return services.start(service, argv=["/bin/sh", "-c", f"exec {command} >>{shlex.quote(str(log))} 2>&1"])


def log_errors(log: Path) -> int:
    """Tracebacks a service wrote to its log: each one is an error nobody handled."""
    if not log.exists():
        return 0
    return log.read_text(errors="replace").count("Traceback (most recent call last)")


# Every password hash in PHC form starts so; the users service stores Argon2id and nothing else.
HASH_MARKERS = ("$argon2",)


def secrets_in_log(log: Path, secrets: Iterable[str]) -> int:
    """How many times a log holds any of `secrets` (tokens, passwords) or a password hash."""
    if not log.exists():
        return 0
    text = log.read_text(errors="replace")
    return sum(text.count(secret) for secret in {*secrets, *HASH_MARKERS} if secret)


async def wait_for(
    condition: Callable[[], Awaitable[bool]], *, within: float, interval: float = 0.05
) -> bool:
    """Poll `condition` until it holds (True) or `within` seconds pass (False)."""
    deadline = time.monotonic() + within
    while True:
        if await condition():
            return True
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)


def mint_token(sub: str, scopes: Sequence[str]) -> str:
    """A token every service started from this environment accepts (same secret and issuer)."""
    from starling_core.settings import ServiceSettings
    from starling_core.tokens import JWTConfig, issue_token

    return issue_token(JWTConfig.from_settings(ServiceSettings()), sub=sub, scopes=scopes, expires_in=3600)


@contextlib.contextmanager
def work_dir(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A directory for databases and logs; kept when asked or when the block fails, for inspection."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    # Traversable (not listable) by others: PostgreSQL, run as its own user when we are root, keeps
    # its data directory in here.
    path.chmod(0o711)
    try:
        yield path
    except BaseException:
        print(f"files kept in {path}", file=sys.stderr)
        raise
    if keep:
        print(f"files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


# --- databases -------------------------------------------------------------------------------------


@dataclass
class Databases:
    """Each service's database URL, and the PostgreSQL cluster behind them if there is one."""

    urls: dict[str, str]
    cluster: Any = None  # starling_servers.postgres.Cluster when on PostgreSQL

    def env(self, name: str) -> dict[str, str]:
        return {f"STARLING_{name.upper()}_DATABASE_URL": self.urls[name]}


@contextlib.contextmanager
def databases(kind: str, names: Sequence[str], directory: Path, *, prefix: str) -> Iterator[Databases]:
    """SQLite files under `directory`, or one database per service on a throwaway PostgreSQL cluster."""
    if kind == "sqlite":
        yield Databases({name: f"sqlite+aiosqlite:///{directory / name}.db" for name in names})
        return
    # The test kit knows how to start (and stop) a cluster from the machine's own binaries.
    from starling_servers import postgres

    cluster_dir = directory / "postgres"
    cluster = postgres.ensure_cluster(cluster_dir)
    try:
        base = cluster.url.rsplit("/", 1)[0]
        urls = {name: f"{base}/{prefix}_{name}" for name in names}
        asyncio.run(create_databases(cluster.url, [url.rsplit("/", 1)[1] for url in urls.values()]))
        yield Databases(urls, cluster)
    finally:
        postgres.stop_cluster(cluster_dir)


async def create_databases(server_url: str, names: Sequence[str]) -> None:
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for name in names:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def query(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of one read, straight from a service's database (not through the service)."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(sql), dict(params or {}))
            return [tuple(row) for row in result.all()]
    finally:
        await engine.dispose()


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
