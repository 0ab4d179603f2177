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

    async def find() -> list[str]:
        return ["run-1"]

    workers = RunWorkers(1, retry_delay=0, scan_every=3600)
    workers.start(process, find)
    try:
        await asyncio.wait_for(finished.wait(), timeout=5)
    finally:
        await workers.stop()
    assert attempts == ["run-1", "run-1", "run-1"]


async def test_the_scan_enqueues_what_it_finds_at_once_and_then_again() -> None:
    scans = 0
    rescanned = asyncio.Event()
    processed: list[str] = []

    async def find() -> list[str]:
        nonlocal scans
        scans += 1
        if scans == 2:
            rescanned.set()
        return ["left-queued", "left-running"] if scans == 1 else ["left-by-a-sibling"]

    async def process(run_id: str) -> None:
        processed.append(run_id)

    workers = RunWorkers(1, scan_every=0)
    workers.start(process, find)
    try:
        await asyncio.wait_for(rescanned.wait(), timeout=5)
        await asyncio.wait_for(workers.queue.join(), timeout=5)
    finally:
        await workers.stop()
    assert processed[:3] == ["left-queued", "left-running", "left-by-a-sibling"]


async def test_a_run_waiting_in_the_queue_is_not_enqueued_twice() -> None:
    workers = RunWorkers(0)
    for run_id in ("a", "b", "a", "a"):
        workers.enqueue(run_id)
    assert workers.queue.qsize() == 2


async def test_no_workers_means_no_scan() -> None:
    async def find() -> list[str]:
        raise AssertionError("nobody would run what a scan finds")

    async def process(run_id: str) -> None:
        raise AssertionError("no worker")

    workers = RunWorkers(0)
    workers.start(process, find)
    assert (workers._tasks, workers._scanner) == ([], None)
    await workers.stop()


async def test_the_scan_stops_when_asked_not_cancelled_mid_query() -> None:
    in_query = asyncio.Event()
    finish_query = asyncio.Event()
    finished: list[bool] = []

    async def find() -> list[str]:
        in_query.set()
        await finish_query.wait()  # a query in flight on a connection
        finished.append(True)
        return []

    async def process(run_id: str) -> None:
        return None

    workers = RunWorkers(1, scan_every=3600)
    workers.start(process, find)
    await asyncio.wait_for(in_query.wait(), timeout=5)
    stopping = asyncio.create_task(workers.stop())
    await asyncio.sleep(0)  # stop() is now waiting for the scan
    finish_query.set()
    await asyncio.wait_for(stopping, timeout=5)
    assert finished == [True]
