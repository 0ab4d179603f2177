"""The seam between the app under test and the test's transaction.

An app built with `create_app(settings, database=...)` reaches its database only through the
`Database` it is given. The kit gives it a `BoundDatabase`: every session it hands out runs on the
test's own connection, inside the test's outer transaction, so what a request commits is a SAVEPOINT
release that the test's ROLLBACK undoes. None of this is in core's `Database`, which production runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker
from starlette.applications import Starlette

from starling_core.db import Database


class BoundDatabase(Database):
    """A `Database` whose sessions all run on `connection`, inside the transaction it is in."""

    def __init__(self, connection: AsyncConnection) -> None:
        super().__init__(connection.engine)
        self.connection = connection
        # Commits inside become SAVEPOINT releases; the test's outer transaction decides.
        self._bound_sessions = async_sessionmaker(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        )
        # One connection cannot run two statements at once (asyncpg refuses), so sessions take turns.
        self._turn = asyncio.Lock()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._turn, self._bound_sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.session() as session, session.begin():
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
