"""The Alembic history, with core's beside it, builds exactly the tables the models and core describe;
and revision 0003 gives the stored addresses the keys registration computes now."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from alembic import command
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import make_url

from starling_core import schema
from starling_core.db import Database
from starling_core.migrations import alembic_config, differences, upgrade
from starling_users.app import MIGRATIONS, create_app
from starling_users.models import User, UsersBase
from starling_users.settings import UsersSettings

from .helpers import started

TABLES = {"alembic_version", *UsersBase.metadata.tables, *schema.metadata.tables}


@pytest_asyncio.fixture(loop_scope="session")
async def empty_url(db_url: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database without tables, on the suite's backend: a file for SQLite; on PostgreSQL, one made on
    the worker's server and dropped afterwards."""
    url = make_url(db_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path}/users.db"
        return
    name = f"{url.database}_migrations"
    server = url.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False)

    async def execute(*statements: str) -> None:
        connection = await asyncpg.connect(server)
        try:
            for statement in statements:
                await connection.execute(statement)
        finally:
            await connection.close()

    await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        await execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database(empty_url: str) -> AsyncIterator[Database]:
    database = Database.from_url(empty_url)
    try:
        yield database
    finally:
        await database.dispose()


async def tables_and_differences(database: Database) -> tuple[set[str], list[object]]:
    async with database.engine.connect() as connection:
        tables = await connection.run_sync(lambda c: inspect(c).get_table_names())
    return set(tables), await differences(database, UsersBase.metadata)


async def test_upgrade_from_empty_matches_the_models_and_cores_tables(empty_database: Database) -> None:
    await upgrade(empty_database, MIGRATIONS)
    await upgrade(empty_database, MIGRATIONS)  # a second upgrade finds nothing to do
    tables, diff = await tables_and_differences(empty_database)
    assert tables == TABLES
    assert diff == []


async def test_the_app_migrates_a_database_of_its_own_at_start_up(empty_url: str) -> None:
    async with started(create_app(UsersSettings(database_url=empty_url))) as client:
        assert (await client.get("/health")).status_code == 200
    database = Database.from_url(empty_url)
    try:
        tables, diff = await tables_and_differences(database)
    finally:
        await database.dispose()
    assert tables == TABLES
    assert diff == []


# Stored before 0003 under the old key, `email.strip().lower()`, in the order they registered.
STORED = [
    ("nfc", "jos\N{LATIN SMALL LETTER E WITH ACUTE}@example.com"),
    ("nfd", "jose\N{COMBINING ACUTE ACCENT}@example.com"),
    ("punycode", "ada@xn--bcher-kva.de"),
    ("idn", "Ada@B\N{LATIN SMALL LETTER U WITH DIAERESIS}cher.de"),
    ("fullwidth", "\uff52\uff4f\uff4f\uff54@example.com"),  # "root", fullwidth, before the real one
    ("ascii", "root@example.com"),
    ("invisible", "bo\N{ZERO WIDTH SPACE}@example.com"),
    ("plain", "Cy@Example.com"),
]


async def test_revision_0003_rekeys_stored_addresses_and_parks_later_duplicates(
    empty_url: str, empty_database: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await upgrade(empty_database, MIGRATIONS, "0002")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": user_id,
            "name": user_id,
            "email": email,
            "email_normalized": email.strip().lower(),
            "password_hash": "$argon2id$not-a-real-hash",
            "role": "user",
            "created_at": start + timedelta(seconds=n),
            "token_version": 0,
        }
        for n, (user_id, email) in enumerate(STORED)
    ]
    async with empty_database.engine.begin() as connection:
        await connection.execute(insert(User), rows)

    await upgrade(empty_database, MIGRATIONS)

    assert await stored_keys(empty_database) == {
        "nfc": "jos\N{LATIN SMALL LETTER E WITH ACUTE}@example.com",
        "nfd": "nfd@duplicate.invalid",
        "punycode": "ada@xn--bcher-kva.de",
        "idn": "idn@duplicate.invalid",
        "fullwidth": "root@example.com",
        "ascii": "ascii@duplicate.invalid",
        "invisible": "bo\N{ZERO WIDTH SPACE}@example.com",  # no longer valid: kept as it was
        "plain": "cy@example.com",
    }
    warnings = [record.getMessage() for record in caplog.records if record.name == "starling.users"]
    assert sum("keeps no email key" in warning for warning in warnings) == 3
    assert all("@" not in warning for warning in warnings)  # ids only: no address in the log

    # Alembic's own environment, as `alembic downgrade` runs it: its own engine, on its own loop.
    await asyncio.to_thread(command.downgrade, alembic_config(MIGRATIONS, empty_url), "0002")
    assert await stored_keys(empty_database) == {user_id: email.lower() for user_id, email in STORED}


async def stored_keys(database: Database) -> dict[str, str]:
    async with database.engine.connect() as connection:
        rows = (await connection.execute(select(User.id, User.email_normalized))).all()
        return {row.id: row.email_normalized for row in rows}
