"""The worker pool: a run that meets an unavailable database is tried again, not left for a restart."""

from __future__ import annotations

import asyncio

from starling_agents.workers import RunWorkers
from starling_core.db import DatabaseUnavailable


async def test_a_run_that_meets_an_unavailable_database_is_tried_again() -> None:
    attempts: list[str] = []
    finished = asyncio.Event()

    async def process(run_id: str) -> None:
        attempts.append(run_id)
        if len(attempts) < 3:
            raise DatabaseUnavailable("database unavailable: ConnectionRefusedError")
        finished.set()

    workers = RunWorkers(1, retry_delay=0)
    workers.start(process, recovered=["run-1"])
    try:
        await asyncio.wait_for(finished.wait(), timeout=5)
    finally:
        await workers.stop()
    assert attempts == ["run-1", "run-1", "run-1"]
