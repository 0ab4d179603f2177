"""The Alembic history builds exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect

from starling_core.db import Database
from starling_core.migrations import differences
from starling_users.app import migrate
from starling_users.models import UsersBase


async def test_upgrade_to_head_matches_the_models(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/users.db")
    try:
        await migrate(database)
        await migrate(database)  # a second upgrade finds nothing to do
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        diff = await differences(database, UsersBase.metadata)
    finally:
        await database.dispose()
    assert set(tables) == {"alembic_version", "users", "rate_limit_counters"}
    assert diff == []
