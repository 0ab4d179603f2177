"""What the scenarios share: options, the scopes their minted tokens hold, the client's patience."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from starling_devtools.harness import ROOT, option, query

CLIENT_TIMEOUT = 5.0  # seconds: an answer later than this counts as a hang
RUN_SCOPES = ("agent:run", "agent:read", "agent:admin")
REPORT_SCOPES = ("reports:read", "reports:write")
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    outage: float = option(3.0, "seconds the database or the broker stays down")
    writers: int = option(6, "concurrent writers during an outage")
    runs: int = option(200, "background runs queued before the kill")
    orders: int = option(
        1000, "orders the upstream starts with, and the shop publishes in the broker scenario"
    )
    only: tuple[str, ...] = ()
    keep: bool = False
    root: Path = ROOT


async def no_unfinished_runs(url: str) -> bool:
    """True once the agents database at `url` holds no queued or running run."""
    rows = await query(url, "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
    return bool(rows[0][0] == 0)


def squeeze(values: Iterable[T]) -> list[T]:
    """Consecutive repeats folded into one: [200, 200, 503, 200] -> [200, 503, 200]."""
    return [value for value, _ in itertools.groupby(values)]
