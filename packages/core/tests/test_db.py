"""A database that cannot be reached is `DatabaseUnavailable` and a 503, and the pool recovers from it.

The PostgreSQL tests end server processes with `pg_terminate_backend`, as a restart or a proxy's
idle timeout would; they need the kit's server (`--db postgres`) and are skipped on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool
from sqlalchemy.util import await_only, greenlet_spawn

from starling_core.db import (
    Database,
    DatabaseUnavailable,
    _ping_asyncpg,
    create_engine,
    is_sqlite,
    is_unavailable,
)
from starling_core.ratelimit import DatabaseRateLimitBackend, Rate

from .itemsapp import ItemSettings, build_app

# Port 1 on loopback refuses at once: a PostgreSQL server that is down.
UNREACHABLE = "postgresql+asyncpg://u:p@127.0.0.1:1/none"


class DriverError(Exception):
    """Stands for a driver's exception carrying a SQLSTATE, as asyncpg's and psycopg's do."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


def sqlite_error(code: int) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = code
    return error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError(),
        DriverError("08006"),  # connection failure
        DriverError("57P01"),  # admin shutdown
        DriverError("57P03"),  # cannot connect now (starting up)
        DriverError("53300"),  # too many connections
        sqlite_error(5),  # SQLITE_BUSY
        sqlite_error(10 | (3 << 8)),  # an extended SQLITE_IOERR code
    ],
    ids=repr,
)
def test_errors_about_reaching_the_database_are_unavailable(error: BaseException) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [DriverError("23505"), DriverError("42P01"), sqlite_error(1), ValueError("bad value")],
    ids=repr,
)
def test_errors_about_the_statement_are_not_unavailable(error: BaseException) -> None:
    assert not is_unavailable(error)


async def test_connecting_to_a_server_that_is_down_raises_unavailable() -> None:
    database = Database.from_url(UNREACHABLE)
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            async with database.session() as session:
                await session.execute(text("SELECT 1"))
    finally:
        await database.dispose()
    assert isinstance(caught.value.__cause__, OSError)


async def test_a_wrong_statement_is_not_mistaken_for_an_outage(tmp_path: object) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/wrong.db")
    try:
        with pytest.raises(OperationalError, match="no such table"):
            async with database.session() as session:
                await session.execute(text("SELECT * FROM missing"))
    finally:
        await database.dispose()


async def test_a_query_cancelled_midway_stays_a_cancellation(tmp_path: object) -> None:
    # SQLAlchemy invalidates a connection whose query was cancelled, as it does on a disconnect;
    # the task must still see CancelledError, or cancelling it (at shutdown, on a timeout) breaks.
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/cancel.db")
    running = asyncio.Event()

    async def slow_query() -> None:
        async with database.session() as session:
            await session.execute(text("SELECT 1"))  # connected: the cancel lands in the query below
            running.set()
            await session.execute(
                text(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) "
                    "SELECT count(*) FROM c"
                )
            )

    task = asyncio.create_task(slow_query())
    try:
        await running.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await database.dispose()


async def test_a_request_while_the_database_is_down_gets_503_with_retry_after() -> None:
    app = build_app(ItemSettings(database_url=UNREACHABLE))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        written = await client.post("/api/items", json={"name": "lost?"}, headers={"X-Request-ID": "outage"})
        read = await client.get("/api/items")
        health = await client.get("/health")
    assert written.status_code == 503
    assert written.json() == {"detail": "The database is unavailable; try again shortly"}
    assert int(written.headers["retry-after"]) >= 1
    assert written.headers["x-request-id"] == "outage"
    assert read.status_code == 503
    assert health.status_code == 503
    assert health.json()["checks"]["database"] == "error: DatabaseUnavailable"


# --- on a real PostgreSQL server ------------------------------------------------------------------


@pytest.fixture
async def pg_engine(db_engine: AsyncEngine) -> AsyncEngine:
    if is_sqlite(db_engine.url):
        pytest.skip("needs PostgreSQL: run with --db postgres")
    return db_engine


@pytest.fixture
async def own_database(pg_engine: AsyncEngine) -> AsyncIterator[Database]:
    """A Database with its own pool on the worker's database, as a running service has."""
    database = Database.from_url(pg_engine.url)
    try:
        yield database
    finally:
        await database.dispose()


async def backend_pid(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)


async def terminate(engine: AsyncEngine, pid: int) -> None:
    """End server process `pid` and wait until it is gone (pg_terminate_backend only signals it)."""
    async with engine.connect() as connection:
        assert await connection.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        for _ in range(1000):
            statement = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            gone = not await connection.scalar(statement, {"pid": pid})
            # pg_stat_activity is read once per transaction: end it, or every look sees the first.
            await connection.rollback()
            if gone:
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"server process {pid} still there 10 s after pg_terminate_backend")


async def test_a_pooled_connection_ended_by_the_server_is_replaced_at_checkout(
    pg_engine: AsyncEngine, own_database: Database
) -> None:
    ended = await backend_pid(own_database)  # now idle in the pool
    await terminate(pg_engine, ended)
    assert await backend_pid(own_database) not in (0, ended)


async def test_the_check_at_checkout_is_one_statement_outside_any_transaction() -> None:
    # SQLAlchemy's pre-ping on asyncpg wraps its statement in BEGIN and ROLLBACK: three round trips
    # before every session, where core's check is one.
    engine = create_engine("postgresql+asyncpg://u@127.0.0.1:1/d")
    sent: list[str] = []

    class Driver:
        async def execute(self, statement: str) -> None:
            sent.append(statement)

    class AdaptedConnection:
        """What the pool hands its checkout listeners: `run_async` runs a coroutine on the driver."""

        def run_async(self, fn: Callable[[Driver], Awaitable[None]]) -> None:
            await_only(fn(Driver()))

    try:
        assert event.contains(engine.sync_engine, "checkout", _ping_asyncpg)
        await greenlet_spawn(_ping_asyncpg, AdaptedConnection(), None, None)
    finally:
        await engine.dispose()

    assert sent == ["SELECT 1"]


async def test_a_connection_ended_mid_session_raises_unavailable_then_the_pool_recovers(
    pg_engine: AsyncEngine, own_database: Database
) -> None:
    async with own_database.session() as session:
        pid = int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)
        await terminate(pg_engine, pid)
        with pytest.raises(DatabaseUnavailable):
            await session.execute(text("SELECT 1"))
    await own_database.ping()
    assert await backend_pid(own_database) != pid


async def pooled_pids(engine: AsyncEngine) -> set[int]:
    """The server processes behind the connections idle in `engine`'s pool (all checked out at once)."""
    pool = engine.pool
    assert isinstance(pool, QueuePool)
    async with contextlib.AsyncExitStack() as stack:
        connections = [await stack.enter_async_context(engine.connect()) for _ in range(pool.checkedin())]
        return {
            int(await connection.scalar(text("SELECT pg_backend_pid()")) or 0) for connection in connections
        }


async def test_requests_after_the_server_ended_every_connection_succeed(pg_engine: AsyncEngine) -> None:
    # The app's own engine commits for real, the rate limiter's counts included: they are deleted
    # afterwards, or later tests would find this caller's count already started.
    database = Database.from_url(pg_engine.url.render_as_string(hide_password=False))
    app = build_app(ItemSettings(database_url=str(database.engine.url)), database=database)
    try:
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as client,
        ):
            first = await asyncio.gather(*(client.get("/api/items/1") for _ in range(4)))
            assert [response.status_code for response in first] == [404] * 4
            apps_connections = await pooled_pids(database.engine)
            assert apps_connections
            for pid in apps_connections:
                await terminate(pg_engine, pid)
            again = await asyncio.gather(*(client.get("/api/items/1") for _ in range(4)))
            health = await client.get("/health")
    finally:
        await database.dispose()
        async with pg_engine.begin() as connection:
            await connection.execute(text("DELETE FROM rate_limit_buckets"))
    assert [response.status_code for response in again] == [404] * 4
    assert health.status_code == 200


async def test_sqlite_write_transactions_take_turns_instead_of_timing_out(tmp_path: object) -> None:
    # busy_timeout=0 makes SQLite refuse a second writer at once, which is what a 5 s timeout
    # becomes under enough load: only taking turns before BEGIN lets all twenty through.
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path}/writers.db")

    @event.listens_for(engine.sync_engine, "connect")
    def _refuse_to_wait(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    database = Database(engine)
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE counted (n INTEGER)"))

    async def write(n: int) -> None:
        async with database.transaction() as session:
            await session.execute(text("INSERT INTO counted VALUES (:n)"), {"n": n})
            # a second statement holds the write lock across an await, as real handlers do
            await session.execute(text("SELECT count(*) FROM counted"))

    try:
        await asyncio.gather(*(write(n) for n in range(20)))
        async with database.session() as session:
            assert await session.scalar(text("SELECT count(*) FROM counted")) == 20
    finally:
        await database.dispose()


async def test_the_limiters_kept_connections_recover_after_the_server_ended_them(
    pg_engine: AsyncEngine, db_url: str
) -> None:
    # The limiter's connections are kept and never pinged: a restart must cost at most a retry, never a
    # 500 (it was asyncpg's "connection is closed" until they were dropped and opened again).
    async def backends() -> set[int]:
        async with pg_engine.connect() as connection:
            rows = await connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
            return {pid for (pid,) in rows}

    database = Database.from_url(db_url)
    backend = DatabaseRateLimitBackend(database)
    caller = f"restart-{uuid.uuid4().hex}"
    try:
        before = await backends()
        assert (await backend.hit(caller, Rate(60, 60))).allowed
        kept = await backends() - before
        assert kept  # the limiter's own connection(s)
        for pid in kept:
            await terminate(pg_engine, pid)

        after_restart = await backend.hit(caller, Rate(60, 60))
    finally:
        async with pg_engine.begin() as connection:
            await connection.execute(
                text("DELETE FROM rate_limit_buckets WHERE key LIKE :key"), {"key": f"%{caller}"}
            )
        await database.dispose()

    assert after_restart.allowed
    assert after_restart.remaining == 58
