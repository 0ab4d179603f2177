"""`Database.session()` reads and refuses to write, in production and in the kit's binding alike.

On PostgreSQL it runs in autocommit (no BEGIN and ROLLBACK round trips), so a write through it would be
committed statement by statement; on SQLite it would seem to work. Refusing on both keeps a suite on
SQLite from hiding what PostgreSQL would do.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core.db import Database, ReadOnlySessionError
from starling_testkit import BoundDatabase

from .itemsapp import Item, ItemBase


@pytest.fixture
async def own_database(tmp_path: Path) -> AsyncIterator[Database]:
    """A service's own Database on a SQLite file, as a running service has (not the kit's binding)."""
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/items.db")
    async with database.engine.begin() as connection:
        await connection.run_sync(ItemBase.metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def count(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Item)) or 0)


async def test_a_service_database_reads_in_session_and_writes_in_transaction(own_database: Database) -> None:
    async with own_database.transaction() as session:
        session.add(Item(name="kept"))

    assert await count(own_database) == 1


async def add(session: AsyncSession) -> None:
    session.add(Item(name="second"))
    await session.flush()


async def update_all(session: AsyncSession) -> None:
    await session.execute(update(Item).values(name="renamed"))


async def delete(session: AsyncSession) -> None:
    await session.delete(await session.scalar(select(Item)))
    await session.flush()


async def change_and_commit(session: AsyncSession) -> None:
    item = await session.scalar(select(Item))
    assert item is not None
    item.name = "changed"
    await session.commit()


async def write_through_session(database: Database, write: Callable[[AsyncSession], Awaitable[None]]) -> None:
    async with database.session() as session:
        await write(session)


@pytest.mark.parametrize("write", [add, update_all, delete, change_and_commit])
async def test_a_write_through_session_is_refused_and_nothing_is_written(
    own_database: Database, write: Callable[[AsyncSession], Awaitable[None]]
) -> None:
    async with own_database.transaction() as session:
        session.add(Item(name="first"))

    with pytest.raises(ReadOnlySessionError, match=r"write inside Database.transaction\(\)"):
        await write_through_session(own_database, write)

    async with own_database.session() as session:
        assert (await session.scalars(select(Item.name))).all() == ["first"]


async def test_loading_and_reading_attributes_is_not_a_write(own_database: Database) -> None:
    async with own_database.transaction() as session:
        session.add(Item(name="read me"))

    async with own_database.session() as session:
        item = await session.scalar(select(Item))
        assert item is not None
        item.name = item.name  # set to what it was: nothing to write
        await session.flush()
        assert item.name == "read me"


async def test_the_kits_binding_refuses_a_write_through_session_too(app_database: BoundDatabase) -> None:
    with pytest.raises(ReadOnlySessionError):
        await write_through_session(app_database, add)

    async with app_database.transaction() as session:
        session.add(Item(name="written"))
    async with app_database.session() as session:
        assert (await session.scalars(select(Item.name))).all() == ["written"]  # not "second"
