"""The Alembic history matches the models and core's tables, and the app migrates an empty database
at start-up."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect

from starling_core import schema as core_schema
from starling_core.db import Database
from starling_core.migrations import differences, upgrade
from starling_reporting.app import MIGRATIONS, create_app
from starling_reporting.models import ReportingBase
from starling_reporting.settings import ReportingSettings


async def test_a_database_migrated_from_empty_matches_the_models_and_cores_tables(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/reporting.db")
    try:
        await upgrade(database, MIGRATIONS)
        await upgrade(database, MIGRATIONS)  # idempotent

        assert await differences(database, ReportingBase.metadata) == []
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables == {"alembic_version", *ReportingBase.metadata.tables, *core_schema.metadata.tables}
    finally:
        await database.dispose()


async def test_the_app_serves_on_an_empty_database(tmp_path: Path) -> None:
    assert (MIGRATIONS / "versions" / "0001_initial.py").is_file()
    app = create_app(ReportingSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/fresh.db"))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as client,
    ):
        assert (await client.get("/health")).status_code == 200
