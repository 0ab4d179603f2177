"""Alembic at start-up: the schema is brought to head on the app's own database."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect

from starling_core.db import Database
from starling_core.migrations import differences, upgrade

from .itemsapp import ItemBase, ItemSettings, build_app

SCRIPTS = Path(__file__).parent / "migrations_fixture"
CORE_TABLES = {"rate_limit_buckets", "outbox_events", "inbox_events", "token_revocations"}


async def test_upgrade_creates_the_tables_and_is_idempotent(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    try:
        await upgrade(database, SCRIPTS)
        await upgrade(database, SCRIPTS)
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
        assert set(tables) == {"alembic_version", "items", *CORE_TABLES}
    finally:
        await database.dispose()


async def test_differences_name_what_the_database_lacks_until_it_is_upgraded(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/d.db")
    try:
        before = await differences(database, ItemBase.metadata)
        await upgrade(database, SCRIPTS)
        after = await differences(database, ItemBase.metadata)
    finally:
        await database.dispose()
    # (their indexes come as add_index entries beside them)
    assert sorted((change[0], change[1].name) for change in before if change[0] == "add_table") == [
        ("add_table", "inbox_events"),
        ("add_table", "items"),
        ("add_table", "outbox_events"),
        ("add_table", "rate_limit_buckets"),
        ("add_table", "token_revocations"),
    ]
    assert after == []


async def test_app_migrates_its_own_database_at_start_up(tmp_path: Path) -> None:
    settings = ItemSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/app.db")
    app = build_app(settings, migrations=SCRIPTS)
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as client,
    ):
        created = await client.post("/api/items", json={"name": "after-migration"})
        assert created.status_code == 201
        assert (await client.get("/api/items")).json() == ["after-migration"]
