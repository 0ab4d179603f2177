"""A bounded pool of asyncio tasks that run background runs, fed by an in-memory queue of run ids.

The queue is only a wake-up list: the database holds the truth. Runs are enqueued when created and,
at start-up, every run left `queued` or `running` by a previous process is enqueued again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

logger = logging.getLogger("starling.agents.workers")

Process = Callable[[str], Awaitable[None]]


class RunWorkers:
    def __init__(self, count: int) -> None:
        self.count = count
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        # Set each time a worker has dealt with a run: tests wait on it instead of sleeping.
        self.processed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

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
            except Exception:
                # One bad run must not take the worker down; the run stays as stored and a restart
                # picks it up again.
                logger.exception("background run %s failed unexpectedly", run_id)
            finally:
                self.queue.task_done()
                self.processed.set()
