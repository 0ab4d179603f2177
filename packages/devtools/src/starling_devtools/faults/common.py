"""What the scenarios share: options, the scopes their minted tokens hold, the client's patience."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from starling_devtools.harness import ROOT, query

CLIENT_TIMEOUT = 5.0  # seconds: an answer later than this counts as a hang
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
    root: Path = ROOT


async def no_unfinished_runs(url: str) -> bool:
    """True once the agents database at `url` holds no queued or running run."""
    rows = await query(url, "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
    return bool(rows[0][0] == 0)
