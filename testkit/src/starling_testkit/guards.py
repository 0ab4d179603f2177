"""Guards: a test that leaks a task or a connection, or whose app writes around the seam, fails.

Leaks pass silently in a single test and then break a later one (a task that writes after the
rollback, a pool that runs dry), so they are caught where they happen, with what leaked named. An
app that commits on an engine of its own, not through the database the kit handed it, would leave
its rows behind for every later test: that commit is refused, and the test fails saying how to wire
the app.
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
from sqlalchemy.engine import Connection, Engine
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
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    awaitable: Any = task.get_coro() if task is not None else None
    chain: list[tuple[str, int]] = []
    while awaitable is not None and getattr(awaitable, "cr_frame", None) is not None:
        frame = awaitable.cr_frame
        chain.append((frame.f_code.co_filename, frame.f_lineno))
        awaitable = awaitable.cr_await
    if chain:
        return chain
    return [(frame.filename, frame.lineno or 0) for frame in traceback.extract_stack(limit=60)]


class CheckoutTracker:
    """Remembers where each pooled connection was checked out, to name a leak's origin."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.origins: dict[int, str] = {}
        self.kit_checkout = False  # set by the kit around its own checkouts, which are no leaks
        self._dbapi: dict[int, int] = {}  # record -> the DBAPI connection it handed out
        event.listen(engine.sync_engine.pool, "checkout", self._checkout)
        event.listen(engine.sync_engine.pool, "checkin", self._checkin)

    def _checkout(self, dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if self.kit_checkout:
            return  # the kit's own, for a test's transaction: returned at its teardown
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


SEAM_HELP = (
    "Hand the app the test's database through the seam, `app_database` (a BoundDatabase): an app "
    "built by starling_core gets it from `app_factory` as `create_app(settings, database=...)`; another "
    "Starlette app takes `app_database.sessionmaker` where it would make its own; a FastAPI app gets "
    '`app.dependency_overrides[get_session] = app_database.dependency`. See the kit\'s README, "The seam".'
)


class UnisolatedWrite(Exception):
    """The app under test committed outside the test's transaction."""


class UnboundWrites:
    """Refuses, during a test that drives the app, a COMMIT on any engine but the kit's own.

    The kit's engine is the test's: its commits are the test's own doing (`db_engine.begin()`), and the
    app's writes through the seam are SAVEPOINT releases, never a COMMIT. Any other engine's COMMIT is
    the app writing around the seam, for real. It is refused before it reaches the database, so the
    rows never outlive the test, and recorded, so the test fails even if the app swallowed the error.
    """

    def __init__(self) -> None:
        self.kit_engine: Engine | None = None
        self.refused: list[str] = []
        self._listening = False

    def watch(self, kit_engine: AsyncEngine) -> None:
        if not self._listening:
            # One listener for every engine, added the first time a test drives an app, never before:
            # a suite that does not use the kit's app fixtures runs without it.
            event.listen(Engine, "commit", self._on_commit)
            self._listening = True
        self.kit_engine = kit_engine.sync_engine
        self.refused = []

    def stop(self) -> list[str]:
        refused, self.kit_engine, self.refused = self.refused, None, []
        return refused

    def _on_commit(self, connection: Connection) -> None:
        if self.kit_engine is None or connection.engine is self.kit_engine:
            return
        url = connection.engine.url.render_as_string(hide_password=True)
        message = (
            f"starling: the app under test committed outside the test's transaction, on an engine of "
            f"its own ({url}): what it wrote would outlive the test. {SEAM_HELP}"
        )
        self.refused.append(message)
        raise UnisolatedWrite(message)


UNBOUND_WRITES = UnboundWrites()
