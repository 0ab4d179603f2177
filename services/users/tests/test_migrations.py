"""The Alembic history, with core's beside it, builds exactly the tables the models and core describe."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from starling_core.db import Database
from starling_core.migrations import differences, upgrade
from starling_users.app import MIGRATIONS, create_app
from starling_users.models import UsersBase
from starling_users.settings import UsersSettings

from .helpers import started


async def tables_and_differences(database: Database) -> tuple[set[str], list[object]]:
    async with database.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(tables), await differences(database, UsersBase.metadata)


async def test_upgrade_from_empty_matches_the_models_and_cores_tables(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    try:
        await upgrade(database, MIGRATIONS)
        await upgrade(database, MIGRATIONS)  # a second upgrade finds nothing to do
        tables, diff = await tables_and_differences(database)
    finally:
        await database.dispose()
    assert tables == {"alembic_version", "users", "rate_limit_counters"}
    assert diff == []


async def test_the_app_migrates_a_database_of_its_own_at_start_up(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/users.db"
    async with started(create_app(UsersSettings(database_url=url))) as client:
        assert (await client.get("/health")).status_code == 200
    database = Database.from_url(url)
    try:
        tables, diff = await tables_and_differences(database)
    finally:
        await database.dispose()
    assert tables == {"alembic_version", "users", "rate_limit_counters"}
    assert diff == []
