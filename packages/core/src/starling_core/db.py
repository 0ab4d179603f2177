"""The async database layer: engines, the `Database` that hands out sessions, the declarative base.

A service reaches its database only through the `Database` its app was built with: by default one
on the URL in its settings; under the test kit, one bound to the test's own transaction (passed in
through `create_app(settings, database=...)`), so what a request writes is rolled back with the test.

A database that cannot be reached (stopped, restarting, refusing or dropping connections, a busy
SQLite file) surfaces as one exception, `DatabaseUnavailable`, whatever the driver raised: the app
answers it 503, and callers can tell "try again later" from a bug.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Dialect, MetaData, event, text
from sqlalchemy.engine import URL, ExceptionContext, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction
from sqlalchemy.types import TypeDecorator

# Constraint names that Alembic autogenerate and PostgreSQL agree on, so migrations can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Seconds a new PostgreSQL connection may take before the attempt counts as "unavailable".
CONNECT_TIMEOUT = 5.0


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
    """Declarative base for services that share nothing but the conventions.

    Subclass it once per service, abstract, with `metadata = new_metadata()`: otherwise every
    service's tables land in this one shared `MetaData`, and a process that imports two services
    would migrate and compare each against the other's tables too.
    """

    __abstract__ = True
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class DatabaseUnavailable(Exception):
    """The database cannot be reached just now; the original driver error is the `__cause__`."""


# SQLSTATE classes that are about the server or the connection, not the statement: 08 connection
# exception, 53 insufficient resources (too many connections), 57 operator intervention (shutting
# down, cannot connect now, statement cancelled).
_UNAVAILABLE_SQLSTATE_CLASSES = frozenset({"08", "53", "57"})
# SQLite primary result codes for a file that is busy, locked, or cannot be opened or written now.
_UNAVAILABLE_SQLITE_CODES = frozenset({5, 6, 10, 13, 14})  # BUSY, LOCKED, IOERR, FULL, CANTOPEN


def is_unavailable(error: BaseException) -> bool:
    """True when a driver error means "the database cannot be reached", not "this statement is wrong"."""
    if isinstance(error, OSError):  # the socket's own error, e.g. a connection reset mid-query
        return True
    sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
    if isinstance(sqlstate, str) and sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES:
        return True
    sqlite_code = getattr(error, "sqlite_errorcode", None)
    return isinstance(sqlite_code, int) and (sqlite_code & 0xFF) in _UNAVAILABLE_SQLITE_CODES


def _translate_unavailable(context: ExceptionContext) -> BaseException | None:
    # The pool's pre-ping must see the driver's own error: on a disconnect it reconnects quietly
    # instead of failing the checkout.
    if context.is_pre_ping:
        return None
    # A cancelled task (or Ctrl-C) also invalidates the connection, and counts as a "disconnect";
    # it must stay a cancellation, or the task would never learn it was cancelled.
    if not isinstance(context.original_exception, Exception):
        return None
    if context.is_disconnect or is_unavailable(context.original_exception):
        return DatabaseUnavailable(f"database unavailable: {type(context.original_exception).__name__}")
    return None


def _connect_or_unavailable(dialect: Dialect, record: Any, cargs: Any, cparams: Any) -> Any:
    # A refused or timed-out connect raises the socket's own OSError, which SQLAlchemy passes on
    # untouched (handle_error sees only driver errors), so it is translated here.
    try:
        return dialect.connect(*cargs, **cparams)
    except OSError as exc:
        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str | URL, **kwargs: Any) -> AsyncEngine:
    """An async engine with the settings Starling relies on for each backend."""
    url = make_url(url)
    # A statement's parameters never reach an error message or a log: they may be a password hash,
    # a refresh token's digest or a user's email.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        database = url.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        # The pool's rollback on return is `_reset_sqlite`'s, sent only when a transaction is open.
        kwargs.setdefault("pool_reset_on_return", None)
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine, in_memory=database in ("", ":memory:"))
    else:
        # A pooled connection may have died since it was last used (server restarted, backend
        # terminated, idle timeout on the way): checking it at checkout costs a round trip and
        # turns a request that would fail on a healthy server into one that reconnects.
        asyncpg_ping = url.get_driver_name() == "asyncpg" and kwargs.get("pool_pre_ping", True)
        if asyncpg_ping:
            # SQLAlchemy's pre-ping on asyncpg is three round trips (BEGIN, ";", ROLLBACK, for
            # pgbouncer's transaction mode); this one is one, and a request's whole cost on
            # PostgreSQL was seven round trips with it where a bare app makes three.
            kwargs["pool_pre_ping"] = False
        else:
            kwargs.setdefault("pool_pre_ping", True)
        if url.get_driver_name() == "asyncpg":
            # asyncpg waits 60 s for a connect by default; a request must fail long before that.
            kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT, **kwargs.get("connect_args", {})}
        engine = create_async_engine(url, **kwargs)
        if asyncpg_ping:
            event.listen(engine.sync_engine, "checkout", _ping_asyncpg)
    event.listen(engine.sync_engine, "handle_error", _translate_unavailable)
    event.listen(engine.sync_engine, "do_connect", _connect_or_unavailable)
    return engine


def _ping_asyncpg(dbapi_connection: Any, connection_record: Any, connection_proxy: Any) -> None:
    """The pool's check at checkout, as one round trip: a connection that cannot run `SELECT 1`
    is replaced by a new one before the caller sees it (SQLAlchemy retries the checkout)."""
    try:
        dbapi_connection.run_async(lambda driver: driver.execute("SELECT 1"))
    except Exception as exc:  # `SELECT 1` fails only with its connection
        raise DisconnectionError(f"pooled connection is gone: {type(exc).__name__}") from exc


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
        # Sent with aiosqlite itself: one trip to its thread, where a statement through SQLAlchemy's
        # cursor is three (open, execute, close), and each trip is a wake-up of the event loop. A
        # deferred BEGIN takes no lock, so it cannot find the file busy.
        connection.connection.dbapi_connection.run_async(lambda driver: driver.execute("BEGIN"))

    @event.listens_for(engine.sync_engine, "reset")
    def _reset_sqlite(dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        # A session ends its transaction itself before its connection goes back, and the pool's own
        # rollback-on-return (off: `pool_reset_on_return=None`) would then be one more trip to the
        # driver's thread for nothing. A connection returned inside a transaction (an error between
        # BEGIN and the end) is still rolled back here; one the garbage collector returns cannot be
        # awaited on, and the pool closes it.
        if reset_state.asyncio_safe and dbapi_connection.driver_connection.in_transaction:
            dbapi_connection.rollback()


READ_ONLY_MESSAGE = (
    "Database.session() reads (on PostgreSQL in autocommit, so a write there would not be one "
    "transaction): write inside Database.transaction()"
)


class ReadOnlySessionError(RuntimeError):
    """A write through `Database.session()`, which reads: the write belongs in `Database.transaction()`."""


class ReadSession(Session):
    """What `Database.session()` hands out: a session that reads, and refuses to write.

    On PostgreSQL it runs in autocommit, so a write through it would be committed statement by
    statement, never as one transaction; on SQLite it would work, and a suite on SQLite would never
    show the difference. So it refuses on both: an INSERT, UPDATE or DELETE through the session, or a
    flush with anything to write.
    """


@event.listens_for(ReadSession, "do_orm_execute")
def _refuse_dml(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        raise ReadOnlySessionError(READ_ONLY_MESSAGE)


@event.listens_for(ReadSession, "before_flush")
def _refuse_flush(session: Session, flush_context: UOWTransaction, instances: object) -> None:
    if session.new or session.deleted or any(session.is_modified(item) for item in session.dirty):
        raise ReadOnlySessionError(READ_ONLY_MESSAGE)


class Database:
    """Hands out `AsyncSession`s on an engine; a service reaches its database only through one.

    `create_app(settings, database=...)` takes one from its caller (the test kit passes one bound to
    the test's transaction, a subclass of this); otherwise it makes one from the settings' URL.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # PostgreSQL reads in autocommit: no BEGIN and ROLLBACK around them, two round trips of a read
        # session's four (the checkout's ping, BEGIN, the query, ROLLBACK). What a read sees does not
        # change: at PostgreSQL's READ COMMITTED every statement takes its own snapshot, inside a
        # transaction or not. SQLite keeps its BEGIN, whose snapshot covers the read session's
        # statements together.
        postgres = engine.dialect.name == "postgresql"
        reading = engine.execution_options(isolation_level="AUTOCOMMIT") if postgres else engine
        self._reads = async_sessionmaker(reading, expire_on_commit=False, sync_session_class=ReadSession)
        # SQLite has one writer at a time. Writers that queue inside SQLite wait in its busy handler,
        # which gives up after busy_timeout, and a lock holder shares the event loop with every request
        # queued behind it; under load the waits pass the timeout and become 503s. Taking turns here,
        # on the loop, lets a write transaction wait as long as it must and keeps SQLite's wait short.
        self._write_lock: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @classmethod
    def from_url(cls, url: str | URL, **engine_kwargs: Any) -> Database:
        return cls(create_engine(url, **engine_kwargs))

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session to read with: on PostgreSQL in autocommit, on SQLite one snapshot. It refuses to
        write (`ReadOnlySessionError`): write in `transaction()`."""
        async with self._reads() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction committed when the block ends, rolled back if it raises."""
        if self._write_lock is None:
            async with self._sessions() as session, session.begin():
                yield session
            return
        async with self._write_lock, self._sessions() as session, session.begin():
            yield session

    def standalone(self) -> AbstractAsyncContextManager[AsyncConnection | AsyncSession]:
        """Where one statement that needs no transaction around it runs, committed when the block ends.

        On PostgreSQL that is a connection in autocommit: one round trip rather than BEGIN, the
        statement and COMMIT. SQLite takes its write turn in `transaction()`.
        """
        if self.engine.dialect.name == "postgresql":
            return self._autocommit()
        return self.transaction()

    @asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    async def ping(self) -> None:
        # Bounded: a health check that hangs on an unreachable server is worse than a 503.
        async with asyncio.timeout(2.0), self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()
