"""A bounded pool of asyncio tasks that run background runs, fed by an in-memory queue of run ids.

The queue is only a wake-up list: the database holds the truth. Runs are enqueued when created, and
a scan enqueues every run no process holds (queued, or running past its lease): at start-up, which
recovers what a previous process left, and then every `scan_every` seconds, which recovers what a
sibling process that died left. Taking a run is a guarded UPDATE, so a run enqueued in several
processes runs once. A run that meets an unavailable database is enqueued again after a pause, so an
outage delays it rather than leaving it `queued` or `running`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from starling_core.db import DatabaseUnavailable

logger = logging.getLogger("starling.agents.workers")

Process = Callable[[str], Awaitable[None]]
Find = Callable[[], Awaitable[Iterable[str]]]


class RunWorkers:
    def __init__(self, count: int, *, retry_delay: float = 1.0, scan_every: float = 30.0) -> None:
        self.count = count
        # Seconds before a run that met an unavailable database is tried again.
        self.retry_delay = retry_delay
        self.scan_every = scan_every
        self._waiting: set[str] = set()  # in the queue: a scan does not add them twice
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()
        self._scanner: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    def enqueue(self, run_id: str) -> None:
        if run_id not in self._waiting:
            self._waiting.add(run_id)
            self.queue.put_nowait(run_id)

    def start(self, process: Process, find: Find) -> None:
        """Start the workers running `process`, and the scan enqueuing what `find` returns."""
        if self.count == 0:
            return  # nobody would run what a scan finds
        self._tasks = [
            asyncio.create_task(self._work(process), name=f"agents-worker-{index}")
            for index in range(self.count)
        ]
        self._scanner = asyncio.create_task(self._scan(find), name="agents-scan")

    async def stop(self) -> None:
        # The scan is told to stop, not cancelled: cancelled mid-query it would take its database
        # connection down with it.
        self._stopping.set()
        if self._scanner is not None:
            await self._scanner
            self._scanner = None
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def _work(self, process: Process) -> None:
        while True:
            run_id = await self.queue.get()
            self._waiting.discard(run_id)
            try:
                await process(run_id)
            except DatabaseUnavailable as exc:
                logger.warning("background run %s postponed: %s", run_id, exc)
                self._retry_later(run_id)
            except Exception:
                # One bad run must not take the worker down; the run stays as stored and a restart
                # picks it up again.
                logger.exception("background run %s failed unexpectedly", run_id)
            finally:
                self.queue.task_done()

    async def _scan(self, find: Find) -> None:
        while not self._stopping.is_set():
            try:
                for run_id in await find():
                    self.enqueue(run_id)
            except DatabaseUnavailable as exc:
                logger.warning("scan for runs to take failed: %s", exc)
            except Exception:
                # The next scan may fare better; a dead scan would leave abandoned runs for good.
                logger.exception("scan for runs to take failed unexpectedly")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.scan_every)

    def _retry_later(self, run_id: str) -> None:
        def retry() -> None:
            self._retries.discard(handle)
            self.enqueue(run_id)

        handle = asyncio.get_running_loop().call_later(self.retry_delay, retry)
        self._retries.add(handle)
