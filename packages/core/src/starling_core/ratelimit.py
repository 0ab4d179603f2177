"""Per-caller rate limiting with no burst at a window's edge, exact under concurrent requests.

The limit is a token bucket kept as one number per caller, GCRA's "theoretical arrival time" (TAT):
`60/minute` lets a caller spend up to 60 requests at once and then one a second, so no two windows'
worth ever pass together (a fixed window let 120 through in 2 s around its boundary). A request is
allowed when the caller's TAT is at most `window - interval` ahead of now, and moves it one interval on.

Two backends keep the TATs. `MemoryRateLimitBackend` keeps them in this process; it is exact and costs
nothing, but N processes let a caller through N times. `DatabaseRateLimitBackend` keeps them in the
service's database, shared by every process and replica, at the price of one write per limited request,
in core's table `rate_limit_buckets` (created by core's migrations, which every service applies).
Each hit is one statement on a store kept for the counts (`_PostgresCounters`, `_SQLiteCounters`), not
a pooled session: on PostgreSQL one round trip on a connection kept for it, on SQLite one statement on
a file of its own beside the database, run on the event loop.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Engine, Table, case, delete, event, inspect, select
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starling_core import schema
from starling_core.db import Database, DatabaseUnavailable, create_engine, is_unavailable
from starling_core.errors import database_unavailable_handler, error_response

_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE | re.ASCII)


_MICROS = 1_000_000


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window < 1:
            raise ValueError(f"Rate limit and window must be at least 1, got {self.limit}/{self.window}s")
        # The limiter counts time in whole microseconds: a faster rate would space requests 0 apart.
        if self.limit > self.window * _MICROS:
            raise ValueError(
                f"Rate {self.limit}/{self.window}s is more than one request a microsecond, the finest the "
                "limiter counts; a rate that high is no limit: use a lower one"
            )


def parse_rate(text: str) -> Rate:
    """Read "60/minute", "10/second", "1000/hour", "5/day" or "100/30s"."""
    match = _RATE.fullmatch(text)
    unit = _SECONDS.get(match.group(3).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"Invalid rate {text!r}: expected <count>/<period> such as '60/minute', '10/second' or '100/30s'"
        )
    return Rate(int(match.group(1)), int(match.group(2) or 1) * unit)


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    # allowed: seconds until the caller's allowance is whole again; refused: until it may try again
    reset_after: float


class RateLimitBackend(Protocol):
    async def hit(self, key: str, rate: Rate) -> RateLimitResult: ...


def _span(rate: Rate) -> int:
    return rate.window * _MICROS


def _interval(rate: Rate) -> int:
    # Rounded down, so that `limit` intervals always fit in the window: exactly `limit` at once pass.
    return _span(rate) // rate.limit


def _allowed(tat: int, now: int, rate: Rate) -> RateLimitResult:
    """The answer for a request that moved the caller's TAT to `tat`."""
    remaining = (_span(rate) - (tat - now)) // _interval(rate)
    return RateLimitResult(True, rate.limit, int(remaining), (tat - now) / _MICROS)


def _refused(tat: int, now: int, rate: Rate) -> RateLimitResult:
    """The answer for a request refused while the caller's TAT is `tat`."""
    retry = tat - (_span(rate) - _interval(rate)) - now
    return RateLimitResult(False, rate.limit, 0, retry / _MICROS)


def _bucket_key(key: str, rate: Rate) -> str:
    # The rate is part of the key, so that a changed rate never inherits the old rate's state.
    return f"{rate.limit}/{rate.window}s:{key}"


class MemoryRateLimitBackend:
    """Keeps the TATs in this process only; replicas that must share one count need a shared backend."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or _now
        self._tats: dict[str, int] = {}
        self._pruned_at = 0

    async def hit(self, key: str, rate: Rate) -> RateLimitResult:
        # No await from the read to the write: concurrent requests on the loop cannot both take
        # the last slot.
        now = int(self._clock() * _MICROS)
        self._prune(now, rate)
        stored = _bucket_key(key, rate)
        tat = max(self._tats.get(stored, now), now)
        if tat - now > _span(rate) - _interval(rate):
            return _refused(tat, now, rate)
        self._tats[stored] = tat + _interval(rate)
        return _allowed(tat + _interval(rate), now, rate)

    def _prune(self, now: int, rate: Rate) -> None:
        # A TAT in the past is a whole allowance, the same as no entry: once a window they go.
        if now - self._pruned_at >= _span(rate):
            self._tats = {key: tat for key, tat in self._tats.items() if tat > now}
            self._pruned_at = now


_BUCKETS = schema.rate_limit_buckets


class DatabaseRateLimitBackend:
    """One TAT per caller in the database, shared by every process and replica that uses it.

    Each hit is one upsert that moves the TAT on only while the caller is within its allowance, and
    returns the new TAT, or nothing when the request is refused (then one read says when to retry). The
    database serialises upserts of one key (PostgreSQL locks the row, SQLite the file), so with the limit
    at 60 exactly 60 concurrent requests pass, across processes as within one.
    """

    def __init__(self, database: Database, clock: Callable[[], float] | None = None) -> None:
        self._database = database
        self._clock = clock or _now
        self._pruned_at = 0
        self._counters = _counters_for(database)

    async def hit(self, key: str, rate: Rate) -> RateLimitResult:
        now = int(self._clock() * _MICROS)
        stored = _stored_key(_bucket_key(key, rate))
        interval = _interval(rate)
        if self._counters is not None:
            if now - self._pruned_at >= _span(rate):
                self._pruned_at = now
                await self._counters.prune(now)
            moved = await self._counters.upsert(stored, now, interval, _span(rate) - interval)
            if moved is not None:
                return _allowed(moved, now, rate)
            return _refused(await self._counters.tat(stored), now, rate)
        current = case((_BUCKETS.c.tat > now, _BUCKETS.c.tat), else_=now)
        upsert = (
            _insert(self._database.engine.dialect.name)(_BUCKETS)
            .values(key=stored, tat=now + interval)
            .on_conflict_do_update(
                index_elements=[_BUCKETS.c.key],
                set_={"tat": current + interval},
                where=current - now <= _span(rate) - interval,
            )
            .returning(_BUCKETS.c.tat)
        )
        prune = None
        if now - self._pruned_at >= _span(rate):
            # Once a window and process: a TAT in the past is a whole allowance, the same as no row,
            # so the table holds about one window's callers. Another process doing the same is harmless.
            prune = delete(_BUCKETS).where(_BUCKETS.c.tat < now)
            self._pruned_at = now
        # The upsert needs no transaction around it (on PostgreSQL: one round trip in autocommit).
        async with self._database.standalone() as connection:
            if prune is not None:
                await connection.execute(prune)
            moved = (await connection.execute(upsert)).scalar_one_or_none()
            if moved is not None:
                return _allowed(int(moved), now, rate)
            tat = (
                await connection.execute(select(_BUCKETS.c.tat).where(_BUCKETS.c.key == stored))
            ).scalar_one()
        return _refused(int(tat), now, rate)

    async def check_table(self, database: Database) -> None:
        """Fail at start-up, not on every limited request, when the buckets' table is missing."""
        try:
            async with database.engine.connect() as connection:
                exists = await connection.run_sync(lambda sync: inspect(sync).has_table(_BUCKETS.name))
        except DatabaseUnavailable:
            return  # a service starts while its database is down, and answers 503 until it is back
        if not exists:
            raise RuntimeError(
                f"The database rate limiter needs the {_BUCKETS.name!r} table: migrate the database "
                "(STARLING_<SERVICE>_AUTO_MIGRATE=true, or starling-migrate <service> upgrade), "
                "or set STARLING_RATE_LIMIT_BACKEND=memory"
            )


# The upsert of `DatabaseRateLimitBackend.hit` as one statement: the caller's TAT moves one interval on
# from max(TAT, now) while that is at most `allowance` ahead of now; refused, nothing changes and no row
# comes back. Parameters: key, now, interval, allowance.
_UPSERT = (
    "INSERT INTO rate_limit_buckets (key, tat) VALUES ({0}, {1} + {2}) "
    "ON CONFLICT (key) DO UPDATE SET tat = "
    "(CASE WHEN rate_limit_buckets.tat > {1} THEN rate_limit_buckets.tat ELSE {1} END) + {2} "
    "WHERE (CASE WHEN rate_limit_buckets.tat > {1} THEN rate_limit_buckets.tat ELSE {1} END) - {1} <= {3} "
    "RETURNING tat"
)
_TAT = "SELECT tat FROM rate_limit_buckets WHERE key = {0}"
_PRUNE = "DELETE FROM rate_limit_buckets WHERE tat < {0}"


class _Counters(Protocol):
    async def upsert(self, key: str, now: int, interval: int, allowance: int) -> int | None: ...

    async def tat(self, key: str) -> int: ...

    async def prune(self, now: int) -> None: ...


class _PostgresCounters:
    """The counts in the service's PostgreSQL database, each hit one round trip: a prepared statement in
    autocommit on connections kept for the limiter (never pinged), sent with asyncpg itself rather than
    through a session (no checkout ping, no BEGIN, no ROLLBACK, no ORM).

    A few connections, not one: hits wait on each other's round trips only as long as the server holds
    the row, so concurrent requests' round trips overlap. With one, a process served at most one limited
    request per round trip, which on a loaded machine capped agents at 65 requests a second.
    """

    CONNECTIONS = 4

    def __init__(self, database: Database) -> None:
        self._engine = create_engine(
            database.engine.url, pool_size=self.CONNECTIONS, max_overflow=0, pool_pre_ping=False
        )
        # Disposed with the service's engine: the app's lifespan disposes that one.
        event.listen(database.engine.sync_engine, "engine_disposed", self._dispose)
        self._upsert = _UPSERT.format("$1", "$2::bigint", "$3::bigint", "$4::bigint")
        self._tat = _TAT.format("$1")
        self._prune = _PRUNE.format("$1::bigint")

    async def _run(self, statement: str, *args: Any) -> Any:
        # The kept connections are never pinged, so after a server restart each is found dead by the
        # statement sent on it: that connection is dropped and the statement sent once more on a new one.
        # Only when the new one fails too is the database unavailable (503), never a 500.
        for attempt in (1, 2):
            async with self._engine.connect() as connection:
                raw = await connection.get_raw_connection()
                driver = raw.driver_connection
                try:
                    return await driver.fetchval(statement, *args)  # type: ignore[union-attr]
                except Exception as exc:
                    closed = driver is None or driver.is_closed()
                    if not (closed or is_unavailable(exc)):
                        raise
                    await connection.invalidate()
                    if attempt == 2 or not closed:
                        raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def upsert(self, key: str, now: int, interval: int, allowance: int) -> int | None:
        moved = await self._run(self._upsert, key, now, interval, allowance)
        return None if moved is None else int(moved)

    async def tat(self, key: str) -> int:
        return int(await self._run(self._tat, key))

    async def prune(self, now: int) -> None:
        await self._run(self._prune, now)

    def _dispose(self, engine: Engine) -> None:
        # Called inside the service engine's own dispose, where the async driver may be awaited.
        self._engine.sync_engine.dispose()


class _SQLiteCounters:
    """The counts in a SQLite file of their own beside the database (`<file>-ratelimit`), shared by every
    process on the machine, each hit one statement run on the event loop (about 40 us).

    Not the database's own file: a hit run on the loop must never wait behind a write transaction of
    this process, which holds the file's lock across awaits. Counts need no durability: a crash loses
    at most an instant of them, so the file is written without fsync.
    """

    def __init__(self, database: Database, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None
        event.listen(database.engine.sync_engine, "engine_disposed", self._dispose)
        self._upsert = _UPSERT.format("?1", "?2", "?3", "?4")
        self._tat = _TAT.format("?1")
        self._prune = _PRUNE.format("?1")

    def _open(self) -> sqlite3.Connection:
        if self._connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                connection.execute("PRAGMA busy_timeout=1000")
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=OFF")
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS rate_limit_buckets "
                    "(key VARCHAR(255) PRIMARY KEY, tat BIGINT NOT NULL)"
                )
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _run(self, statement: str, *args: Any) -> Any:
        try:
            row = self._open().execute(statement, args).fetchone()
        except sqlite3.Error as exc:
            if is_unavailable(exc):
                raise DatabaseUnavailable(f"database unavailable: {type(exc).__name__}") from exc
            raise
        return None if row is None else row[0]

    async def upsert(self, key: str, now: int, interval: int, allowance: int) -> int | None:
        moved = self._run(self._upsert, key, now, interval, allowance)
        return None if moved is None else int(moved)

    async def tat(self, key: str) -> int:
        return int(self._run(self._tat, key))

    async def prune(self, now: int) -> None:
        self._run(self._prune, now)

    def _dispose(self, engine: Engine) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _counters_for(database: Database) -> _Counters | None:
    """The store a hit goes to, or None: through `database.standalone()` (the test kit's database keeps
    standalone statements in the test's transaction, and an in-memory SQLite is one process's)."""
    if type(database).standalone is not Database.standalone:
        return None
    url = database.engine.url
    if url.get_backend_name() == "postgresql" and url.get_driver_name() == "asyncpg":
        return _PostgresCounters(database)
    if url.get_backend_name() == "sqlite":
        name = url.database or ""
        if name and name != ":memory:" and not name.startswith("file:") and "mode=memory" not in str(url):
            return _SQLiteCounters(database, Path(f"{name}-ratelimit"))
    return None


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: Rate,
        backend: RateLimitBackend,
        path_prefixes: Sequence[str] = ("/api/",),
    ) -> None:
        self.app = app
        self.rate = rate
        self.backend = backend
        self.path_prefixes = tuple(prefix.rstrip("/") for prefix in path_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return

        try:
            result = await self.backend.hit(_caller(scope), self.rate)
        except (DatabaseUnavailable, PoolTimeout) as exc:
            # A shared backend's database is the service's own: the request would fail anyway.
            response = await database_unavailable_handler(Request(scope), exc)
            await response(scope, receive, send)
            return
        reset = str(max(1, math.ceil(result.reset_after)))
        headers = {
            "RateLimit-Limit": str(result.limit),
            "RateLimit-Remaining": str(result.remaining),
            "RateLimit-Reset": reset,
        }
        if not result.allowed:
            response = error_response(429, "Rate limit exceeded", {**headers, "Retry-After": reset})
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _is_limited(self, path: str) -> bool:
        # "/users" covers "/users" and "/users/..." but not "/usersx".
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.path_prefixes)


def _stored_key(key: str) -> str:
    # A token's subject is the signer's to choose: one too long for the column, or with a NUL that
    # PostgreSQL refuses in text, is stored as its digest rather than failing the request.
    if len(key) <= 200 and "\x00" not in key:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def _insert(dialect: str) -> Callable[[Table], Any]:
    # Imported here: the PostgreSQL dialect is loaded with a PostgreSQL engine anyway, and an app
    # on SQLite should not pay for importing it.
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as postgresql_insert

        return postgresql_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert


def _caller(scope: Scope) -> str:
    # scope["user"] is set by AuthenticationMiddleware, which runs before this middleware.
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return f"user:{user.identity}"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


def _now() -> float:
    # Looked up per call, so that a frozen test clock moves the windows too.
    return time.time()
