"""What the scenarios share: options, ports, service environments, starting services, the log check."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from starling_devtools import load, services

PORTS = {
    "database": {"users": 19220, "agents": 19221, "reporting": 19222},
    "agents": {"agents": 19230},
    "upstream": {"upstream": 19240, "reporting": 19241},
    "processes": {"agents": 19250, "llm": 19251},
    "broker": {"reporting": 19260, "kafka": 19261, "proxy": 19262},
}
CLIENT_TIMEOUT = 5.0  # seconds: an answer later than this counts as a hang
PASSWORD_ENV = {
    "STARLING_USERS_PASSWORD_TIME_COST": "1",
    "STARLING_USERS_PASSWORD_MEMORY_COST": "8192",
    "STARLING_USERS_PASSWORD_PARALLELISM": "1",
}
RUN_SCOPES = ("agent:run", "agent:read", "agent:admin")
REPORT_SCOPES = ("reports:read", "reports:write")


@dataclass(frozen=True)
class Options:
    only: tuple[str, ...]
    outage: float
    writers: int
    runs: int
    orders: int
    keep: bool


def base_env(name: str, database_url: str) -> dict[str, str]:
    env = {
        "STARLING_ENV": "development",
        "STARLING_RATE_LIMIT": services.UNLIMITED_RATE,
        f"STARLING_{name.upper()}_DATABASE_URL": database_url,
    }
    return env | (PASSWORD_ENV if name == "users" else {})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def running(specs: Sequence[services.Service], directory: Path) -> Iterator[dict[str, services.Running]]:
    """The services started with their logs under `directory`, healthy, and stopped when the block ends."""
    started: list[services.Running] = []
    try:
        for service in specs:
            started.append(load.start_logged(service, directory / f"{service.name}.log"))
        services.wait_healthy(started, timeout=60)
        yield {item.service.name: item for item in started}
    finally:
        services.stop(started)


def logs_check(directory: Path, names: Sequence[str]) -> load.Check:
    counts = {name: load.log_errors(directory / f"{name}.log") for name in names}
    return load.check(
        "no tracebacks in the service logs",
        not any(counts.values()),
        ", ".join(f"{name} {count}" for name, count in counts.items()),
    )


async def no_unfinished_runs(url: str) -> bool:
    """True once the agents database at `url` holds no queued or running run."""
    rows = await load.query(url, "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
    return bool(rows[0][0] == 0)
