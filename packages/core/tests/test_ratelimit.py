from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from starling_core.app import create_app, default_rate_limit_backend
from starling_core.auth import authentication_middleware
from starling_core.db import Database
from starling_core.errors import exception_handlers
from starling_core.ratelimit import (
    DatabaseRateLimitBackend,
    MemoryRateLimitBackend,
    Rate,
    RateLimitBackend,
    RateLimitMiddleware,
    parse_rate,
)
from starling_core.settings import ServiceSettings
from starling_core.tokens import JWTConfig, issue_token
from starling_testkit import BoundDatabase

from .itemsapp import ItemSettings

SECRET = "starling-tests-secret-".ljust(64, "x")
CONFIG = JWTConfig(signing_key=SECRET, verifying_key=SECRET, issuer="starling-users")
START = 1_000_000.0


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


NewBackend = Callable[[Clock], RateLimitBackend]


@pytest.fixture(params=["memory", "database"])
def new_backend(request: pytest.FixtureRequest) -> NewBackend:
    """Each middleware test runs on both backends; the database one counts in the test's transaction."""
    if request.param == "memory":
        return MemoryRateLimitBackend
    database: Database = request.getfixturevalue("app_database")
    return lambda clock: DatabaseRateLimitBackend(database, clock)


def limited_app(
    rate: Rate, backend: RateLimitBackend, path_prefixes: Sequence[str] = ("/api/",)
) -> Starlette:
    return Starlette(
        routes=[Route("/api/items", ok), Route("/health", ok), Route("/users", ok), Route("/usersx", ok)],
        middleware=[
            authentication_middleware(CONFIG),
            Middleware(
                RateLimitMiddleware,
                rate=rate,
                backend=backend,
                path_prefixes=path_prefixes,
            ),
        ],
        exception_handlers=exception_handlers(),
    )


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(CONFIG, sub=sub, scopes=[])}"}


async def test_exactly_the_limit_of_concurrent_requests_gets_through(new_backend: NewBackend) -> None:
    app = limited_app(Rate(60, 60), new_backend(Clock()))
    async with client_for(app) as client:
        headers = bearer("user-1")
        responses = await asyncio.gather(*(client.get("/api/items", headers=headers) for _ in range(90)))

    allowed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert (len(allowed), len(refused)) == (60, 30)
    for response in refused:
        assert response.json() == {"detail": "Rate limit exceeded"}
        assert int(response.headers["Retry-After"]) >= 1


async def test_refused_request_says_when_to_retry(new_backend: NewBackend) -> None:
    clock = Clock()
    app = limited_app(Rate(1, 60), new_backend(clock))
    async with client_for(app) as client:
        await client.get("/api/items")
        clock.now += 15
        response = await client.get("/api/items")

    # one request a minute: the next one is due 60 s after the first, 45 s from now
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "45"
    assert response.headers["RateLimit-Limit"] == "1"
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reset"] == "45"


async def test_allowed_responses_carry_ratelimit_headers(new_backend: NewBackend) -> None:
    app = limited_app(Rate(60, 60), new_backend(Clock(START)))
    async with client_for(app) as client:
        first = await client.get("/api/items")
        second = await client.get("/api/items")

    assert first.headers["RateLimit-Limit"] == "60"
    assert first.headers["RateLimit-Remaining"] == "59"
    assert second.headers["RateLimit-Remaining"] == "58"
    # the allowance is whole again two intervals (1 s each at 60/minute) from now
    assert second.headers["RateLimit-Reset"] == "2"


async def test_no_burst_of_twice_the_limit_around_a_minute_boundary(new_backend: NewBackend) -> None:
    # A fixed window let 60 through just before a minute ended and 60 more just after it.
    clock = Clock(START + 59.5)
    app = limited_app(Rate(60, 60), new_backend(clock))
    async with client_for(app) as client:
        before = [(await client.get("/api/items")).status_code for _ in range(60)]
        clock.now += 1.0  # the next minute has begun
        after = [(await client.get("/api/items")).status_code for _ in range(60)]

    assert before.count(200) == 60
    assert after.count(200) == 1  # one interval (1 s) has passed: one more request, not 60


async def test_the_allowance_refills_at_the_steady_rate(new_backend: NewBackend) -> None:
    clock = Clock()
    app = limited_app(Rate(6, 60), new_backend(clock))
    async with client_for(app) as client:
        spent = [(await client.get("/api/items")).status_code for _ in range(7)]
        clock.now += 10  # 6 a minute is one every 10 s
        refilled = [(await client.get("/api/items")).status_code for _ in range(2)]
        clock.now += 60
        whole = [(await client.get("/api/items")).status_code for _ in range(7)]

    assert spent == [200] * 6 + [429]
    assert refilled == [200, 429]
    assert whole == [200] * 6 + [429]


async def test_requests_with_a_bad_token_are_limited_by_address(new_backend: NewBackend) -> None:
    # A stale or forged token leaves the caller anonymous: counted by its address, not let through
    # uncounted, so guessing tokens is limited too.
    app = limited_app(Rate(60, 60), new_backend(Clock()))
    async with client_for(app) as client:
        forged = {"Authorization": "Bearer not-a-token"}
        statuses = [(await client.get("/api/items", headers=forged)).status_code for _ in range(70)]

    assert statuses == [200] * 60 + [429] * 10  # `ok` needs no token; a protected route would be 401


async def test_each_subject_has_its_own_count(new_backend: NewBackend) -> None:
    app = limited_app(Rate(2, 60), new_backend(Clock()))
    async with client_for(app) as client:
        first_user = [await client.get("/api/items", headers=bearer("user-1")) for _ in range(3)]
        second_user = await client.get("/api/items", headers=bearer("user-2"))

    assert [r.status_code for r in first_user] == [200, 200, 429]
    assert second_user.status_code == 200


async def test_anonymous_callers_are_counted_by_address(new_backend: NewBackend) -> None:
    app = limited_app(Rate(1, 60), new_backend(Clock()))
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.1", 1000)), base_url="http://testserver"
        ) as first,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("10.0.0.2", 1000)), base_url="http://testserver"
        ) as second,
    ):
        statuses = [(await first.get("/api/items")).status_code for _ in range(2)]
        other_address = await second.get("/api/items")

    assert statuses == [200, 429]
    assert other_address.status_code == 200


async def test_a_refused_caller_may_try_again_once_its_interval_has_passed(new_backend: NewBackend) -> None:
    clock = Clock()
    app = limited_app(Rate(1, 60), new_backend(clock))
    async with client_for(app) as client:
        await client.get("/api/items")
        refused = await client.get("/api/items")
        clock.now += 60
        allowed = await client.get("/api/items")

    assert refused.status_code == 429
    assert allowed.status_code == 200


async def test_routes_outside_the_prefixes_are_not_limited(new_backend: NewBackend) -> None:
    app = limited_app(Rate(1, 60), new_backend(Clock()))
    async with client_for(app) as client:
        responses = [await client.get("/health") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "RateLimit-Limit" not in responses[0].headers


async def test_prefix_covers_the_path_and_below_it_but_not_a_longer_name(new_backend: NewBackend) -> None:
    app = limited_app(Rate(1, 60), new_backend(Clock()), path_prefixes=["/users"])
    async with client_for(app) as client:
        users = [(await client.get("/users")).status_code for _ in range(2)]
        below = await client.get("/users/me")
        longer = [(await client.get("/usersx")).status_code for _ in range(2)]

    assert users == [200, 429]
    assert below.status_code == 429  # the same caller's count: "/users/me" is under "/users"
    assert longer == [200, 200]


async def test_memory_backend_forgets_callers_whose_allowance_is_whole_again() -> None:
    clock = Clock()
    backend = MemoryRateLimitBackend(clock)
    rate = Rate(5, 60)
    for caller in range(100):
        await backend.hit(f"caller-{caller}", rate)

    clock.now += 60
    result = await backend.hit("caller-0", rate)

    assert (result.allowed, result.remaining) == (True, 4)
    assert len(backend._tats) == 1


async def test_memory_backend_follows_a_frozen_time_time(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = MemoryRateLimitBackend()
    monkeypatch.setattr(time, "time", lambda: START)
    await backend.hit("caller", Rate(1, 60))
    refused = await backend.hit("caller", Rate(1, 60))

    monkeypatch.setattr(time, "time", lambda: START + 60)
    allowed = await backend.hit("caller", Rate(1, 60))

    assert (refused.allowed, refused.reset_after) == (False, 60)
    assert allowed.allowed


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("60/minute", Rate(60, 60)),
        ("10/second", Rate(10, 1)),
        ("1000/hour", Rate(1000, 3600)),
        ("5/day", Rate(5, 86400)),
        ("100/30s", Rate(100, 30)),
        ("20 / 5 minutes", Rate(20, 300)),
        ("3/Hours", Rate(3, 3600)),
    ],
)
async def test_parse_rate_reads_count_and_period(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    "text", ["", "60", "sixty/minute", "60/fortnight", "60/ms", "0/minute", "60/0s", "1000001/second"]
)
async def test_parse_rate_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid rate|at least 1|one request a microsecond"):
        parse_rate(text)


def test_the_fastest_rate_the_limiter_counts_is_one_request_a_microsecond() -> None:
    assert parse_rate("1000000/second") == Rate(1_000_000, 1)
    with pytest.raises(ValueError, match="one request a microsecond"):
        parse_rate("100000000/minute")


def test_a_rate_setting_the_limiter_cannot_count_is_refused_at_start_up() -> None:
    with pytest.raises(ValidationError, match="rate_limit"):
        ServiceSettings(rate_limit="100000000/minute")


# --- the database backend --------------------------------------------------------------------------


async def count_rows(connection: AsyncConnection) -> int:
    return int((await connection.execute(text("SELECT count(*) FROM rate_limit_buckets"))).scalar_one())


async def test_database_backend_forgets_callers_whose_allowance_is_whole_again(
    db_connection: AsyncConnection,
) -> None:
    clock = Clock()
    backend = DatabaseRateLimitBackend(BoundDatabase(db_connection), clock)
    rate = Rate(5, 60)
    for caller in range(20):
        await backend.hit(f"caller-{caller}", rate)
    assert await count_rows(db_connection) == 20

    clock.now += 60
    result = await backend.hit("caller-0", rate)

    assert (result.allowed, result.remaining) == (True, 4)
    assert await count_rows(db_connection) == 1


@pytest.mark.parametrize("caller", ["user:" + "x" * 300, "user:nul\x00in-a-subject"], ids=["long", "nul"])
async def test_database_backend_counts_any_caller_key(db_connection: AsyncConnection, caller: str) -> None:
    backend = DatabaseRateLimitBackend(BoundDatabase(db_connection), Clock())
    results = [await backend.hit(caller, Rate(1, 60)) for _ in range(2)]
    other = await backend.hit(caller[:-1], Rate(1, 60))
    assert [r.allowed for r in (*results, other)] == [True, False, True]


async def test_database_backend_counts_a_changed_rate_afresh(db_connection: AsyncConnection) -> None:
    backend = DatabaseRateLimitBackend(BoundDatabase(db_connection), Clock())
    await backend.hit("caller", Rate(1, 60))
    refused = await backend.hit("caller", Rate(1, 60))
    other_window = await backend.hit("caller", Rate(1, 30))

    assert (refused.allowed, other_window.allowed) == (False, True)


async def test_database_backend_is_one_count_across_processes(db_url: str, db_engine: AsyncEngine) -> None:
    # Two engines stand in for two processes: each has its own pool and commits for real, so the
    # count is shared only through the database. A caller no other test uses, deleted afterwards.
    processes = [Database.from_url(db_url, pool_size=10) for _ in range(2)]
    clock = Clock()  # one instant for all 90: the order the database serialises them in decides alone
    backends = [DatabaseRateLimitBackend(database, clock) for database in processes]
    caller = f"processes-{uuid.uuid4().hex}"
    try:
        results = await asyncio.gather(*(backends[n % 2].hit(caller, Rate(60, 3600)) for n in range(90)))
    finally:
        async with processes[0].transaction() as session:
            await session.execute(
                text("DELETE FROM rate_limit_buckets WHERE key LIKE :key"), {"key": f"%{caller}"}
            )
        for database in processes:
            await database.dispose()

    assert sum(result.allowed for result in results) == 60
    assert sorted(result.remaining for result in results if result.allowed) == list(range(60))


async def test_on_sqlite_two_processes_share_one_count_in_a_file_beside_the_database(tmp_path: Path) -> None:
    # Each hit is one statement on the event loop, in a file of its own: never behind a write
    # transaction of the service, which holds the database's own file across awaits.
    url = f"sqlite+aiosqlite:///{tmp_path}/service.db"
    processes = [Database.from_url(url) for _ in range(2)]
    clock = Clock()
    backends = [DatabaseRateLimitBackend(database, clock) for database in processes]
    try:
        results = await asyncio.gather(*(backends[n % 2].hit("user:one", Rate(60, 3600)) for n in range(90)))
    finally:
        for database in processes:
            await database.dispose()

    assert sum(result.allowed for result in results) == 60
    assert (tmp_path / "service.db-ratelimit").is_file()
    refused = [result for result in results if not result.allowed]
    assert {round(result.reset_after) for result in refused} == {60}


async def test_the_counters_store_is_closed_with_the_database(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/service.db")
    backend = DatabaseRateLimitBackend(database, Clock())
    await backend.hit("user:one", Rate(5, 60))

    await database.dispose()

    assert backend._counters is not None
    assert backend._counters._connection is None  # type: ignore[attr-defined]


async def test_an_unreachable_counter_database_is_503() -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: connecting is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    database = Database.from_url(f"postgresql+asyncpg://starling@127.0.0.1:{port}/nowhere")
    app = limited_app(Rate(60, 60), DatabaseRateLimitBackend(database))
    try:
        async with client_for(app) as client:
            limited = await client.get("/api/items")
            unlimited = await client.get("/health")
    finally:
        await database.dispose()

    assert limited.status_code == 503
    assert limited.headers["Retry-After"] == "1"
    assert "unavailable" in limited.json()["detail"]
    assert unlimited.status_code == 200


@pytest.mark.parametrize(
    ("url", "setting", "expected"),
    [
        ("sqlite+aiosqlite:///x.db", "auto", MemoryRateLimitBackend),
        ("postgresql+asyncpg://u@h/d", "auto", DatabaseRateLimitBackend),
        ("postgresql+asyncpg://u@h/d", "memory", MemoryRateLimitBackend),
        ("sqlite+aiosqlite:///x.db", "database", DatabaseRateLimitBackend),
    ],
)
async def test_the_setting_picks_the_backend(url: str, setting: str, expected: type) -> None:
    settings = ItemSettings(database_url=url, rate_limit_backend=setting)
    database = Database.from_url(url)  # an engine only: choosing connects to nothing
    backend = default_rate_limit_backend(settings, database)
    assert type(backend) is expected


async def test_a_missing_counters_table_stops_the_start_up(tmp_path: Path) -> None:
    settings = ItemSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/bare.db", rate_limit_backend="database"
    )
    app = create_app(settings, routes=[])  # no migrations: nothing creates the table
    with pytest.raises(RuntimeError, match=r"rate_limit_buckets.*STARLING_RATE_LIMIT_BACKEND=memory"):
        async with LifespanManager(app):
            pass
