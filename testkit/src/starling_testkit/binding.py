"""The seam between the app under test and the test's transaction: `BoundDatabase`.

The kit hands the app one object, the `app_database` fixture, and every session it gives out runs on
the test's own connection, inside the test's outer transaction: what a request commits is a
SAVEPOINT release that the test's ROLLBACK undoes. It speaks each app's language:

- an app built by `starling_core.app.create_app` takes it whole, `create_app(settings, database=...)`
  (it is a core `Database`);
- any other Starlette app takes `.sessionmaker`, an `async_sessionmaker` like the one it would make;
- a FastAPI app takes `.dependency` as the override of its session dependency.

None of this is in core's `Database`, which production runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from types import TracebackType
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from starling_core.db import Database, ReadSession


class _Turns:
    """One connection cannot run two transactions' statements interleaved (their SAVEPOINTs would
    cross, and asyncpg refuses a second statement mid-flight), so sessions take turns. A task that
    holds the turn may open another session inside it (nested, so its SAVEPOINT nests too)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0

    async def acquire(self) -> None:
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            self._depth += 1
            return
        await self._lock.acquire()
        self._owner, self._depth = task, 1

    def release(self) -> None:
        self._depth -= 1
        if self._depth == 0:
            self._owner = None
            self._lock.release()


class BoundSession(AsyncSession):
    """An `AsyncSession` that takes its turn on the test's connection while its `async with` lasts."""

    def __init__(self, *args: Any, turns: _Turns, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._turns = turns

    async def __aenter__(self) -> BoundSession:
        await self._turns.acquire()
        return self

    async def __aexit__(
        self, type_: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            await super().__aexit__(type_, value, traceback)
        finally:
            self._turns.release()


class BoundDatabase(Database):
    """The seam: a `Database` whose sessions all run on `connection`, inside the transaction it is in."""

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection.engine)
        self.connection = connection
        # Commits inside become SAVEPOINT releases; the test's outer transaction decides.
        options: dict[str, Any] = {
            "bind": connection,
            "class_": BoundSession,
            "expire_on_commit": False,
            "join_transaction_mode": "create_savepoint",
            "turns": _Turns(),
        }
        self.sessionmaker: async_sessionmaker[AsyncSession] = async_sessionmaker(**options)
        # `session()` refuses to write here as it does in production, where PostgreSQL reads in autocommit.
        self._bound_reads: async_sessionmaker[AsyncSession] = async_sessionmaker(
            **options, sync_session_class=ReadSession
        )

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._bound_reads() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dependency(self) -> AsyncIterator[AsyncSession]:
        """A session for one request: the override of a FastAPI app's session dependency."""
        async with self.sessionmaker() as session:
            yield session

    def standalone(self) -> AbstractAsyncContextManager[AsyncSession]:
        # Autocommit on another connection would escape the test's transaction.
        return self.transaction()

    async def ping(self) -> None:
        async with self.session() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        """Nothing to release: the connection and its engine are the kit's."""


class AppFactory(Protocol):
    """What a suite's `app_factory` fixture returns: `create_app`, taking the settings and the database.

    The kit passes `database=`: a `BoundDatabase` on the test's transaction, or a `Database` on the
    worker's engine for `live_server`. That is the seam through which everything the app writes is undone.
    """

    def __call__(self, settings: Any, /, *, database: Database) -> Starlette: ...
