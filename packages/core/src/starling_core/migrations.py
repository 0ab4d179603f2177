"""Alembic glue shared by every service: upgrade at start-up, the body of each `env.py`, and the
`starling-migrate` command that makes a revision from the models or upgrades a database.

A service's migrations folder holds only its history, `versions/`. The Alembic environment and the
revision template are core's (`starling_core/environment/`), shared by every service. Core also owns tables of
its own (`starling_core.schema`: the rate limiter's counters) and their history (`starling_core/versions/`,
branch `starling_core`): every service's configuration reads both histories, so one `upgrade` brings a
database to the heads of both, one `alembic_version` table records them, and no service carries a copy.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from starling_core import schema
from starling_core.db import Database, UTCDateTime, create_engine, is_sqlite

if TYPE_CHECKING:
    # Alembic itself is imported by the functions that migrate: every app imports this module for
    # `upgrade`, and Alembic (with the dialects its DDL modules load) took about a quarter of a second
    # of every process's start-up, a test run's included, where nothing migrates.
    from alembic.autogenerate.api import AutogenContext
    from alembic.config import Config
    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

ENVIRONMENT = Path(__file__).parent / "environment"
CORE_VERSIONS = Path(__file__).parent / "versions"


def alembic_config(migrations: str | Path, database_url: str, metadata: MetaData | None = None) -> Config:
    """The Alembic configuration of a service whose history is `migrations/versions/`.

    `metadata` (the service's tables) is what autogenerate compares with; upgrading needs none.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ENVIRONMENT))
    config.set_main_option("path_separator", "os")
    config.set_main_option(
        "version_locations", os.pathsep.join([str(Path(migrations) / "versions"), str(CORE_VERSIONS)])
    )
    # `%` is interpolation syntax in Alembic's ini parser; a password may contain one.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["target_metadata"] = [*([metadata] if metadata is not None else []), schema.metadata]
    return config


async def upgrade(database: Database, migrations: str | Path, revision: str = "heads") -> None:
    """Bring the database's schema (the service's and core's) up to `revision` on its own engine."""
    from alembic import command

    config = alembic_config(migrations, database.engine.url.render_as_string(hide_password=False))

    def run(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with database.engine.begin() as connection:
        await connection.run_sync(run)


async def differences(database: Database, metadata: MetaData) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` and core's tables."""

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, [metadata, schema.metadata]))  # type: ignore[arg-type]

    async with database.engine.connect() as connection:
        return await connection.run_sync(compare)


def run_env() -> None:
    """The body of the shared `env.py`, for the configuration `alembic_config` built."""
    from alembic import context

    config = context.config
    # Autogenerate compares against core's tables too, so it never proposes to drop them.
    target_metadata: list[MetaData] = config.attributes.get("target_metadata", [schema.metadata])
    connection: Connection | None = config.attributes.get("connection")
    if connection is not None:
        _run(connection, target_metadata)
        return
    url = config.get_main_option("sqlalchemy.url") or ""
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url, target_metadata))


async def _run_online(url: str, target_metadata: Sequence[MetaData]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run, target_metadata)
    finally:
        await engine.dispose()


def _run(connection: Connection, target_metadata: Sequence[MetaData], /, **options: Any) -> None:
    from alembic import context

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=is_sqlite(connection.engine.url),
        compare_type=True,
        render_item=_render_item,
        **options,
    )
    with context.begin_transaction():
        context.run_migrations()


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """A generated revision writes core's `UTCDateTime` as the column it is stored in. Rendered as itself,
    it would be `starling_core.db.UTCDateTime(...)` with no import: a file that fails to run. And a
    history that imports no application type keeps working when that type changes."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False  # Alembic's own rendering
