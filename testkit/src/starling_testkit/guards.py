"""Leak guards: a test that leaves an asyncio task pending or a database connection checked out fails.

Both leaks pass silently in a single test and then break a later one (a task that writes after the
rollback, a pool that runs dry), so they are caught where they happen, with what leaked named.
"""

from __future__ import annotations

import asyncio
import sys
import sysconfig
import traceback
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import starling_core

_NOT_ORIGINS = (
    *(
        str(Path(module.__file__ or "").parent)
        for module in (sqlalchemy, starling_core, sys.modules[__package__])
    ),
    sysconfig.get_paths()["purelib"],
    sysconfig.get_paths()["stdlib"],
)


def describe_task(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    where = getattr(coro, "__qualname__", repr(coro))
    return f"{task.get_name()} running {where}"


def leaked_tasks(loop: asyncio.AbstractEventLoop, before: set[asyncio.Task[Any]]) -> list[asyncio.Task[Any]]:
    """Tasks started since `before` that are still pending, cancelled so the leak fails one test only."""
    pending = [t for t in asyncio.all_tasks(loop) - before if not t.done()]
    if pending and not loop.is_running():
        # One turn of the loop lets tasks that were cancelled or finished during teardown settle.
        loop.run_until_complete(asyncio.sleep(0))
        pending = [t for t in pending if not t.done()]
    for task in pending:
        task.cancel()  # so the leak fails this test only, not the ones after it
    return pending


def _awaiting_frames() -> list[tuple[str, int]]:
    """Where the current task is, outermost first. Async SQLAlchemy checks out inside a greenlet whose
    Python stack does not show the awaiting coroutines, so the chain of awaits is walked instead."""
    places = [(frame.filename, frame.lineno or 0) for frame in traceback.extract_stack(limit=60)]
    try:
        task = asyncio.current_task()
    except RuntimeError:
        return places
    awaitable: Any = task.get_coro() if task is not None else None
    chain: list[tuple[str, int]] = []
    while awaitable is not None and getattr(awaitable, "cr_frame", None) is not None:
        frame = awaitable.cr_frame
        chain.append((frame.f_code.co_filename, frame.f_lineno))
        awaitable = awaitable.cr_await
    return chain or places


class CheckoutTracker:
    """Remembers where each pooled connection was checked out, to name a leak's origin."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.origins: dict[int, str] = {}
        self._dbapi: dict[int, int] = {}  # record -> the DBAPI connection it handed out
        event.listen(engine.sync_engine.pool, "checkout", self._checkout)
        event.listen(engine.sync_engine.pool, "checkin", self._checkin)

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        # The origin is the innermost frame of the caller's own code: not a library, not the loop,
        # not Starling's kit or core, which only pass the checkout along.
        frames = [place for place in _awaiting_frames() if not place[0].startswith(_NOT_ORIGINS)]
        self.origins[id(record)] = "{}:{}".format(*frames[-1]) if frames else "unknown"
        self._dbapi[id(record)] = id(dbapi_connection)

    def _checkin(self, dbapi_connection: Any, record: Any) -> None:
        self.origins.pop(id(record), None)
        self._dbapi.pop(id(record), None)

    def exempt(self, connection: AsyncConnection) -> None:
        """Stop tracking a connection the kit itself holds across tests."""
        dbapi = (
            id(connection.sync_connection.connection.dbapi_connection) if connection.sync_connection else 0
        )
        for record in [key for key, held in self._dbapi.items() if held == dbapi]:
            self.origins.pop(record, None)

    def outstanding(self) -> dict[int, str]:
        return dict(self.origins)
