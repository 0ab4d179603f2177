"""In-process publish/subscribe of run events, what the WebSocket endpoint streams.

Events are JSON-ready dicts: `{"type": "status", "status": ...}`, `{"type": "output", "output": ...}`
and, last, `{"type": "done", "status": ...}`. A subscriber gets the events published after it
subscribed; whoever subscribes reads the run's stored state next, so nothing falls in between.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]


def status_event(status: str) -> Event:
    return {"type": "status", "status": status}


def output_event(output: str) -> Event:
    return {"type": "output", "output": output}


def done_event(status: str) -> Event:
    return {"type": "done", "status": status}


class RunEvents:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[asyncio.Queue[Event]]] = {}

    @contextmanager
    def subscribe(self, run_id: str) -> Iterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers.setdefault(run_id, set()).add(queue)
        try:
            yield queue
        finally:
            subscribers = self._subscribers.get(run_id, set())
            subscribers.discard(queue)
            if not subscribers:
                self._subscribers.pop(run_id, None)

    def publish(self, run_id: str, event: Event) -> None:
        for queue in self._subscribers.get(run_id, ()):
            queue.put_nowait(event)

    def subscriber_count(self, run_id: str) -> int:
        return len(self._subscribers.get(run_id, ()))
