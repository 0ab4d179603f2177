"""SQLAlchemy's recipe "Joining a Session into an External Transaction", written by hand without the kit's
plugin, on the engine Starling uses (starling_core.db.create_engine carries the documented SQLite
SAVEPOINT workaround). On PostgreSQL it uses the server in STARLING_TEST_DATABASE_URL, one database per
xdist worker, made as the bench makes every database it uses."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest
import pytest_asyncio
from benchmodel import Row
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core.db import create_engine
from starling_devtools.bench.cluster import recreate_database

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from sqlalchemy.ext.asyncio import AsyncEngine

pytest_plugins = ["benchclock"]


async def _database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    server = os.environ.get("STARLING_TEST_DATABASE_URL")
    if not server:
        return f"sqlite+aiosqlite:///{tmp_path_factory.getbasetemp() / 'textbook.sqlite3'}"
    return await recreate_database(server, "textbook_" + os.environ.get("PYTEST_XDIST_WORKER", "main"))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(await _database_url(tmp_path_factory))
    async with engine.begin() as connection:
        await connection.run_sync(Row.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db_session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
        yield session
        await session.close()
        await transaction.rollback()
