"""The async database layer: engines, the `Database` that hands out sessions, the declarative base.

A service reaches its database only through the `Database` on `app.state.database`. The test kit
swaps in `Database.for_connection(...)`, bound to the test's own transaction, so what a request
writes is rolled back with the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Constraint names that Alembic autogenerate and PostgreSQL agree on, so migrations can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores no offset, so it is put back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Starling stores timezone-aware UTC times")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    """Declarative base for services that share nothing but the conventions: subclass per service."""

    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine with the settings Starling relies on for each backend."""
    url = make_url(url)
    if is_sqlite(url):
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine, in_memory=database in ("", ":memory:"))
        return engine
    kwargs.setdefault("pool_pre_ping", False)
    return create_async_engine(url, **kwargs)


def _configure_sqlite(engine: AsyncEngine, *, in_memory: bool) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # The sqlite3 driver on Python 3.11 opens transactions lazily and commits on its own before
        # SAVEPOINT handling kicks in, so a commit inside a test would escape the test's rollback.
        # Taking over BEGIN ourselves is SQLAlchemy's documented workaround.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=5000")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")


class Database:
    """Hands out `AsyncSession`s on an engine, or on one connection that a caller owns."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connection: AsyncConnection | None = None,
        owns_engine: bool = True,
    ) -> None:
        self.engine = engine
        self.connection = connection
        self.owns_engine = owns_engine
        if connection is None:
            self._sessions = async_sessionmaker(engine, expire_on_commit=False)
            self._lock: asyncio.Lock | None = None
        else:
            # Commits inside become SAVEPOINT releases; the caller's outer transaction decides.
            self._sessions = async_sessionmaker(
                bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
            )
            # One connection cannot run two statements at once (asyncpg refuses), so sessions on a
            # shared connection take turns.
            self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str | URL, **engine_kwargs: Any) -> Database:
        return cls(create_engine(url, **engine_kwargs))

    @classmethod
    def for_connection(cls, connection: AsyncConnection) -> Database:
        return cls(connection.engine, connection=connection, owns_engine=False)

    @property
    def externally_managed(self) -> bool:
        """True when someone else owns the schema and the engine (the test kit)."""
        return not self.owns_engine

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session; the caller commits. Rolled back if the block raises."""
        if self._lock is None:
            async with self._sessions() as session:
                yield session
            return
        async with self._lock, self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction committed when the block ends, rolled back if it raises."""
        async with self.session() as session, session.begin():
            yield session

    async def ping(self) -> None:
        # Bounded: a health check that hangs on an unreachable server is worse than a 503.
        async with asyncio.timeout(2.0):
            if self.connection is not None:
                async with self.session() as session:
                    await session.execute(text("SELECT 1"))
                return
            async with self.engine.connect() as connection:
                await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self.owns_engine:
            await self.engine.dispose()
