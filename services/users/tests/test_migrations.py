"""The Alembic history builds exactly the tables the models describe."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from starling_core.db import Database
from starling_users.app import migrate
from starling_users.models import UsersBase


async def test_upgrade_to_head_matches_the_models(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/users.db")

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, UsersBase.metadata))

    try:
        await migrate(database)
        await migrate(database)  # a second upgrade finds nothing to do
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
            diff = await connection.run_sync(differences)
    finally:
        await database.dispose()
    assert set(tables) == {"alembic_version", "users"}
    assert diff == []
