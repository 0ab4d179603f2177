"""The Alembic history matches the models, and the app migrates an empty database at start-up."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect

from starling_core.db import Database
from starling_core.migrations import differences
from starling_reporting.app import MIGRATIONS, create_app, migrate
from starling_reporting.models import ReportingBase
from starling_reporting.settings import ReportingSettings


async def test_head_matches_the_models(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/reporting.db")
    try:
        await migrate(database)
        await migrate(database)  # idempotent

        assert await differences(database, ReportingBase.metadata) == []
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables == {"alembic_version", *ReportingBase.metadata.tables}
    finally:
        await database.dispose()


async def test_the_app_serves_on_an_empty_database(tmp_path: Path) -> None:
    assert (MIGRATIONS / "env.py").is_file()
    app = create_app(ReportingSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/fresh.db"))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        assert (await client.get("/health")).status_code == 200
