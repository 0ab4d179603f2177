"""In-process publish/subscribe of run events, what the WebSocket endpoint streams.

Events are JSON-ready dicts: `{"type": "status", "status": ...}`, `{"type": "output", "output": ...}`
and, last, `{"type": "done", "status": ...}`. A subscriber gets the events published after it
subscribed; whoever subscribes reads the run's stored state next, so nothing falls in between.

Only this process's events arrive here. A run that another process works on or cancels (several
`serve` processes, replicas) is seen by re-reading it: `follow` does both.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]
# A run's stored (status, output) read again; None when the database cannot be read just now.
Reread = Callable[[], Awaitable[tuple[str, str | None] | None]]


def status_event(status: str) -> Event:
    return {"type": "status", "status": status}


def output_event(output: str) -> Event:
    return {"type": "output", "output": output}


def done_event(status: str) -> Event:
    return {"type": "done", "status": status}


def final_events(status: str, output: str | None) -> list[Event]:
    """What a finished run ends with: its output, when it has one, then `done`."""
    return [*([output_event(output)] if output is not None else []), done_event(status)]


class FollowerIdle(Exception):
    """A follower had nothing to send for its idle timeout."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Idle timeout: nothing to send for {seconds:g} seconds")


async def follow(
    queue: asyncio.Queue[Event],
    reread: Reread,
    *,
    status: str,
    unfinished: Collection[str],
    poll: float,
    idle: float,
    stop: asyncio.Event,
) -> AsyncGenerator[Event, None]:
    """The events of a run last seen in `status`, up to and including `done`.

    Events published in this process come from `queue` as they happen. When none came for `poll`
    seconds, `reread()` gives the stored (status, output), and a change nobody published here becomes
    the same events. A status is never sent twice.

    It ends as soon as `stop` is set (the client went away), waiting only for a re-read under way: one
    cancelled mid-query would take its database connection down with it. It raises `FollowerIdle`
    when it had nothing to give for `idle` seconds.
    """
    clock = asyncio.get_running_loop().time
    sent = status
    quiet_until = clock() + idle
    while not stop.is_set():
        wait = min(poll, quiet_until - clock())
        if wait <= 0:
            raise FollowerIdle(idle)
        event = await _next_event(queue, stop, wait)
        if event is not None:
            events = [event]
        elif stop.is_set() or clock() >= quiet_until:
            continue  # the loop's checks say which
        else:
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
            quiet_until = clock() + idle
            if event["type"] == "done":
                return


async def _next_event(queue: asyncio.Queue[Event], stop: asyncio.Event, within: float) -> Event | None:
    """The next published event; None once `within` seconds passed without one or `stop` is set."""
    getting = asyncio.ensure_future(queue.get())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait((getting, stopping), timeout=within, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        getting.cancel()  # an event not taken yet stays in the queue
    return getting.result() if getting.done() and not getting.cancelled() else None


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
