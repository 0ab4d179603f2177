"""Per-caller fixed-window rate limiting, exact under concurrent requests.

Two backends count the hits. `MemoryRateLimitBackend` counts in this process; it is exact and costs
nothing, but N processes let a caller through N times. `DatabaseRateLimitBackend` keeps one count in
the service's database, shared by every process and replica, at the price of one write per limited
request, in core's table `rate_limit_counters` (created by core's migrations, which every service applies).
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Table, delete, inspect
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starling_core import schema
from starling_core.db import Database, DatabaseUnavailable
from starling_core.errors import database_unavailable_handler, error_response

_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window < 1:
            raise ValueError(f"Rate limit and window must be at least 1, got {self.limit}/{self.window}s")


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
    reset_after: float  # seconds until the window resets


class RateLimitBackend(Protocol):
    async def hit(self, key: str, rate: Rate) -> RateLimitResult: ...


class MemoryRateLimitBackend:
    """Counts in this process only; replicas that must share one count need a shared backend."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or _now
        # Windows are aligned to the clock, so every caller of a rate shares one window: when it
        # ends, the counts of the whole window go at once and memory holds only the current one.
        self._windows: dict[Rate, tuple[int, dict[str, int]]] = {}

    async def hit(self, key: str, rate: Rate) -> RateLimitResult:
        # No await from the read to the write: concurrent requests on the loop cannot both take
        # the last slot.
        now = self._clock()
        index = int(now // rate.window)
        window = self._windows.get(rate)
        if window is None or window[0] != index:
            window = self._windows[rate] = (index, {})
        counts = window[1]
        used = counts.get(key, 0)
        reset_after = (index + 1) * rate.window - now
        if used >= rate.limit:
            return RateLimitResult(False, rate.limit, 0, reset_after)
        counts[key] = used + 1
        return RateLimitResult(True, rate.limit, rate.limit - used - 1, reset_after)


_COUNTERS = schema.rate_limit_counters


class DatabaseRateLimitBackend:
    """One count per caller in the database, shared by every process and replica that uses it.

    Each hit is one upsert that adds 1 and returns the new count, committed on its own. The database
    serialises upserts of one key (PostgreSQL locks the row, SQLite the file), so with the limit at
    60 exactly 60 callers read a count of 60 or less, across processes as within one.
    """

    def __init__(self, database: Database, clock: Callable[[], float] | None = None) -> None:
        self._database = database
        self._clock = clock or _now
        self._pruned_before = 0

    async def hit(self, key: str, rate: Rate) -> RateLimitResult:
        now = self._clock()
        start = int(now // rate.window) * rate.window
        database = self._database
        upsert = (
            _insert(database.engine.dialect.name)(_COUNTERS)
            .values(key=_stored_key(f"{rate.window}s:{key}"), window_start=start, hits=1)
            .on_conflict_do_update(
                index_elements=[_COUNTERS.c.key, _COUNTERS.c.window_start],
                set_={"hits": _COUNTERS.c.hits + 1},
            )
            .returning(_COUNTERS.c.hits)
        )
        prune = None
        if start > self._pruned_before:
            # Once per window and process: finished windows go, so the table holds about one
            # window's callers. Another process doing the same at the same time is harmless.
            prune = delete(_COUNTERS).where(_COUNTERS.c.window_start < start)
            self._pruned_before = start
        # The upsert needs no transaction around it (on PostgreSQL: one round trip in autocommit).
        async with database.standalone() as connection:
            if prune is not None:
                await connection.execute(prune)
            hits: int = (await connection.execute(upsert)).scalar_one()
        reset_after = start + rate.window - now
        if hits > rate.limit:
            return RateLimitResult(False, rate.limit, 0, reset_after)
        return RateLimitResult(True, rate.limit, rate.limit - hits, reset_after)

    async def check_table(self, database: Database) -> None:
        """Fail at start-up, not on every limited request, when the counters' table is missing."""
        try:
            async with database.engine.connect() as connection:
                exists = await connection.run_sync(lambda sync: inspect(sync).has_table(_COUNTERS.name))
        except DatabaseUnavailable:
            return  # a service starts while its database is down, and answers 503 until it is back
        if not exists:
            raise RuntimeError(
                f"The database rate limiter needs the {_COUNTERS.name!r} table: migrate the database "
                "(STARLING_<SERVICE>_AUTO_MIGRATE=true, or starling-migrate <service> upgrade), "
                "or set STARLING_RATE_LIMIT_BACKEND=memory"
            )


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
