"""In-process publish/subscribe of run events, what the WebSocket endpoint streams.

Events are JSON-ready dicts: `{"type": "status", "status": ...}`, `{"type": "output", "output": ...}`
and, last, `{"type": "done", "status": ...}`. A subscriber gets the events published after it
subscribed; whoever subscribes reads the run's stored state next, so nothing falls in between.

Only this process's events arrive here. A run that another process works on or cancels (several
`serve` processes, replicas) is seen by re-reading it: `follow` does both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]


def status_event(status: str) -> Event:
    return {"type": "status", "status": status}


def output_event(output: str) -> Event:
    return {"type": "output", "output": output}


def done_event(status: str) -> Event:
    return {"type": "done", "status": status}


def final_events(status: str, output: str | None) -> list[Event]:
    """What a finished run ends with: its output, when it has one, then `done`."""
    return [*([output_event(output)] if output is not None else []), done_event(status)]


async def follow(
    queue: asyncio.Queue[Event],
    reread: Callable[[], Awaitable[tuple[str, str | None] | None]],
    *,
    status: str,
    unfinished: Collection[str],
    poll: float,
) -> AsyncIterator[Event]:
    """The events of a run last seen in `status`, up to and including `done`.

    Events published in this process come from `queue` as they happen. When none came for `poll`
    seconds, `reread()` gives the stored (status, output), None when it cannot be read just now,
    and a change nobody published here becomes the same events. A status is never sent twice.
    """
    sent = status
    while True:
        try:
            events = [await asyncio.wait_for(queue.get(), timeout=poll)]
        except TimeoutError:
            stored = await reread()
            if stored is None or stored[0] == sent:
                continue
            current, output = stored
            events = [status_event(current)] if current in unfinished else final_events(current, output)
        for event in events:
            if event["type"] == "status":
                if event["status"] == sent:
                    continue
                sent = event["status"]
            yield event
            if event["type"] == "done":
                return


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
