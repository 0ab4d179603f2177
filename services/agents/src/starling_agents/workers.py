"""A bounded pool of asyncio tasks that run background runs, fed by an in-memory queue of run ids.

The queue is only a wake-up list: the database holds the truth. Runs are enqueued when created and,
at start-up, every run left `queued` or `running` by a previous process is enqueued again. A run
that meets an unavailable database is enqueued again after a pause, so an outage delays it rather
than leaving it `queued` or `running` until the next restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from starling_core.db import DatabaseUnavailable

logger = logging.getLogger("starling.agents.workers")

Process = Callable[[str], Awaitable[None]]


class RunWorkers:
    def __init__(self, count: int, *, retry_delay: float = 1.0) -> None:
        self.count = count
        # Seconds before a run that met an unavailable database is tried again.
        self.retry_delay = retry_delay
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        # Set each time a worker has dealt with a run: tests wait on it instead of sleeping.
        self.processed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()

    def enqueue(self, run_id: str) -> None:
        self.queue.put_nowait(run_id)

    def start(self, process: Process, recovered: Iterable[str] = ()) -> None:
        for run_id in recovered:
            self.enqueue(run_id)
        self._tasks = [
            asyncio.create_task(self._work(process), name=f"agents-worker-{index}")
            for index in range(self.count)
        ]

    async def stop(self) -> None:
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
                self.processed.set()

    def _retry_later(self, run_id: str) -> None:
        def retry() -> None:
            self._retries.discard(handle)
            self.enqueue(run_id)

        handle = asyncio.get_running_loop().call_later(self.retry_delay, retry)
        self._retries.add(handle)
