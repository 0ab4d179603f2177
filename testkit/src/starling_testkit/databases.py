"""Each xdist worker's own database, with a name that repeats from run to run.

SQLite: a file per worker. PostgreSQL: a database per worker, cloned from a template that carries the
schema, so the schema is built once per run however many workers there are.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from starling_core.db import create_engine
from starling_testkit import isolation, options

DATABASE_URL_ENV = options.DATABASE_URL_ENV
RUN_DIR_ENV = options.RUN_DIR_ENV
BASE_NAME = "starling_test"


def worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


def run_dir() -> Path:
    """The directory shared by the controller and every worker of this run (see the plugin)."""
    shared = os.environ.get(RUN_DIR_ENV)
    if not shared:
        raise pytest.UsageError("starling: the test kit's plugin did not configure this run")
    return Path(shared)


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def create_schema(connection: Connection, metadata: MetaData) -> None:
    """`metadata`'s tables in a database made empty just before: without `checkfirst`, SQLAlchemy would
    ask the database about each table first, one query apiece, to learn that none exists."""
    metadata.create_all(connection, checkfirst=False)


@dataclass
class SQLiteDatabase:
    directory: Path
    worker: str
    keep: bool = False

    @property
    def path(self) -> Path:
        return self.directory / f"{BASE_NAME}_{self.worker}.sqlite3"

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    async def create(self, metadata: MetaData) -> AsyncEngine:
        remove_sqlite(self.path)  # a file kept by --keep-db or a killed run must not leak rows
        engine = create_engine(self.url, **isolation.ENGINE_OPTIONS)
        async with engine.begin() as connection:
            await connection.run_sync(create_schema, metadata)
        return engine

    async def destroy(self) -> None:
        if not self.keep:
            remove_sqlite(self.path)


@dataclass
class PostgresDatabase:
    server_url: str  # any database on the server; its user must be allowed to create databases
    worker: str
    lock_dir: Path
    keep: bool = False
    base: str = field(init=False)
    made: bool = field(default=False, init=False)  # the empty database exists (see `Preparation`)

    def __post_init__(self) -> None:
        given = make_url(self.server_url).database
        self.base = given if given and given != "postgres" else BASE_NAME

    @property
    def name(self) -> str:
        return f"{self.base}_{self.worker}"

    @property
    def url(self) -> str:
        return _with_database(self.server_url, self.name)

    async def make_empty(self) -> None:
        """The worker's database, empty: what a run without xdist builds its schema in."""
        await self._execute(
            f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)', f'CREATE DATABASE "{self.name}"'
        )
        self.made = True

    async def create(self, metadata: MetaData) -> AsyncEngine:
        if self.worker == "main":
            # Alone in the run (no xdist): a template would only be one more CREATE DATABASE
            # (~70 ms, a checkpoint each), so the schema goes straight into the database.
            if not self.made:
                await self.make_empty()
            engine = create_engine(self.url, **isolation.ENGINE_OPTIONS)
            async with engine.begin() as connection:
                await connection.run_sync(create_schema, metadata)
            return engine
        from filelock import FileLock  # here: only xdist workers on PostgreSQL take it

        template = f"{self.base}_template"
        # One worker builds the template; the rest wait for it, then every worker clones it.
        with FileLock(str(self.lock_dir / f"{template}.lock")):
            marker = self.lock_dir / f"{template}.ready"
            if not marker.exists():
                await self._execute(
                    f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)', f'CREATE DATABASE "{template}"'
                )
                engine = create_engine(_with_database(self.server_url, template))
                try:
                    async with engine.begin() as connection:
                        await connection.run_sync(create_schema, metadata)
                finally:
                    await engine.dispose()  # a template with open connections cannot be cloned
                marker.touch()
        await self._execute(
            f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)',
            f'CREATE DATABASE "{self.name}" TEMPLATE "{template}"',
        )
        return create_engine(self.url, **isolation.ENGINE_OPTIONS)

    async def destroy(self) -> None:
        if not self.keep:
            await self._execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    async def _execute(self, *statements: str) -> None:
        import asyncpg  # here, not at the top: a SQLite run never needs it

        url = make_url(_with_database(self.server_url, "postgres")).set(drivername="postgresql")
        connection = await asyncpg.connect(url.render_as_string(hide_password=False))
        try:
            for statement in statements:  # one at a time: CREATE DATABASE refuses a multi-statement string
                await connection.execute(statement)
        finally:
            await connection.close()


TestDatabase = SQLiteDatabase | PostgresDatabase


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


def provider(config: pytest.Config, basetemp: Path) -> TestDatabase:
    worker = worker_id(config)
    keep = options.keep_databases(config)
    given = os.environ.get(DATABASE_URL_ENV) or None
    if given is None and options.database(config) == "sqlite":
        return SQLiteDatabase(basetemp, worker, keep)
    if given is not None and make_url(given).get_backend_name() == "sqlite":
        raise pytest.UsageError(f"{DATABASE_URL_ENV} must point at a PostgreSQL server")
    shared = run_dir()
    if given is None:
        from starling_servers import postgres  # here: a SQLite run never starts a cluster

        given = postgres.ensure_cluster(shared).url
    return PostgresDatabase(given, worker, shared, keep)


class Preparation:
    """A PostgreSQL run's slow first steps, taken in a thread while pytest collects the tests.

    Starting the throwaway cluster (initdb, pg_ctl: 1-2 s) and creating the worker's database
    (~150 ms, a checkpoint) need neither the tests nor their metadata, and collecting takes as long:
    so they overlap, and the first database test finds them done. A template (xdist) needs the
    metadata, so under xdist only the cluster is started ahead.
    """

    def __init__(self, config: pytest.Config) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="starling-db")
        self._future = self._executor.submit(self._prepare, config)
        self._used = False

    @staticmethod
    def _prepare(config: pytest.Config) -> TestDatabase:
        database = provider(config, Path())  # PostgreSQL only (see wants_postgres): no file path
        if isinstance(database, PostgresDatabase) and database.worker == "main":
            asyncio.run(database.make_empty())
        return database

    def database(self) -> TestDatabase:
        """The prepared database, once ready; raises what preparing it raised."""
        self._used = True
        return self._future.result()

    def finish(self) -> None:
        """Wait for the thread (the cluster must not start after the run stopped it); drop a
        database made for tests that never came."""
        self._executor.shutdown(wait=True)
        if self._used or self._future.exception() is not None:
            return
        database = self._future.result()
        if isinstance(database, PostgresDatabase) and database.made and not database.keep:
            asyncio.run(database.destroy())
