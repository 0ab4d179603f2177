from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from starling_core.auth import authentication_middleware
from starling_core.errors import exception_handlers
from starling_core.ratelimit import MemoryRateLimitBackend, Rate, RateLimitMiddleware, parse_rate
from starling_core.tokens import JWTConfig, issue_token

SECRET = "starling-tests-secret-".ljust(64, "x")
CONFIG = JWTConfig(signing_key=SECRET, verifying_key=SECRET, issuer="starling-users")
# 20 seconds before the end of a minute window, so that every count in a test lands in one window.
START = 1_000_000.0


class Clock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def ok(request: Request) -> Response:
    return JSONResponse({"ok": True})


def limited_app(rate: Rate, clock: Clock, path_prefixes: Sequence[str] = ("/api/",)) -> Starlette:
    return Starlette(
        routes=[Route("/api/items", ok), Route("/health", ok), Route("/users", ok), Route("/usersx", ok)],
        middleware=[
            authentication_middleware(CONFIG),
            Middleware(
                RateLimitMiddleware,
                rate=rate,
                backend=MemoryRateLimitBackend(clock),
                path_prefixes=path_prefixes,
            ),
        ],
        exception_handlers=exception_handlers(),
    )


def client_for(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


def bearer(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(CONFIG, sub=sub, scopes=[])}"}


async def test_exactly_the_limit_of_concurrent_requests_gets_through() -> None:
    app = limited_app(Rate(60, 60), Clock())
    async with client_for(app) as client:
        headers = bearer("user-1")
        responses = await asyncio.gather(*(client.get("/api/items", headers=headers) for _ in range(90)))

    allowed = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code == 429]
    assert (len(allowed), len(refused)) == (60, 30)
    for response in refused:
        assert response.json() == {"detail": "Rate limit exceeded"}
        assert int(response.headers["Retry-After"]) >= 1


async def test_refused_request_says_when_to_retry() -> None:
    app = limited_app(Rate(1, 60), Clock(START))
    async with client_for(app) as client:
        await client.get("/api/items")
        response = await client.get("/api/items")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "20"
    assert response.headers["RateLimit-Limit"] == "1"
    assert response.headers["RateLimit-Remaining"] == "0"
    assert response.headers["RateLimit-Reset"] == "20"


async def test_allowed_responses_carry_ratelimit_headers() -> None:
    app = limited_app(Rate(60, 60), Clock(START))
    async with client_for(app) as client:
        first = await client.get("/api/items")
        second = await client.get("/api/items")

    assert first.headers["RateLimit-Limit"] == "60"
    assert first.headers["RateLimit-Remaining"] == "59"
    assert second.headers["RateLimit-Remaining"] == "58"
    assert second.headers["RateLimit-Reset"] == "20"


async def test_each_subject_has_its_own_count() -> None:
    app = limited_app(Rate(2, 60), Clock())
    async with client_for(app) as client:
        first_user = [await client.get("/api/items", headers=bearer("user-1")) for _ in range(3)]
        second_user = await client.get("/api/items", headers=bearer("user-2"))

    assert [r.status_code for r in first_user] == [200, 200, 429]
    assert second_user.status_code == 200


async def test_anonymous_callers_are_counted_by_address() -> None:
    app = limited_app(Rate(1, 60), Clock())
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


async def test_a_new_window_starts_a_new_count() -> None:
    clock = Clock()
    app = limited_app(Rate(1, 60), clock)
    async with client_for(app) as client:
        await client.get("/api/items")
        refused = await client.get("/api/items")
        clock.now += 20
        allowed = await client.get("/api/items")

    assert refused.status_code == 429
    assert allowed.status_code == 200


async def test_routes_outside_the_prefixes_are_not_limited() -> None:
    app = limited_app(Rate(1, 60), Clock())
    async with client_for(app) as client:
        responses = [await client.get("/health") for _ in range(3)]

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert "RateLimit-Limit" not in responses[0].headers


async def test_prefix_covers_the_path_and_below_it_but_not_a_longer_name() -> None:
    app = limited_app(Rate(1, 60), Clock(), path_prefixes=["/users"])
    async with client_for(app) as client:
        users = [(await client.get("/users")).status_code for _ in range(2)]
        below = await client.get("/users/me")
        longer = [(await client.get("/usersx")).status_code for _ in range(2)]

    assert users == [200, 429]
    assert below.status_code == 429  # the same caller's count: "/users/me" is under "/users"
    assert longer == [200, 200]


async def test_memory_backend_keeps_only_the_current_window() -> None:
    clock = Clock()
    backend = MemoryRateLimitBackend(clock)
    rate = Rate(5, 60)
    for caller in range(100):
        await backend.hit(f"caller-{caller}", rate)

    clock.now += 60
    result = await backend.hit("caller-0", rate)

    assert (result.allowed, result.remaining) == (True, 4)
    assert len(backend._windows[rate][1]) == 1


async def test_memory_backend_follows_a_frozen_time_time(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = MemoryRateLimitBackend()
    monkeypatch.setattr(time, "time", lambda: START)
    await backend.hit("caller", Rate(1, 60))
    refused = await backend.hit("caller", Rate(1, 60))

    monkeypatch.setattr(time, "time", lambda: START + 20)
    allowed = await backend.hit("caller", Rate(1, 60))

    assert (refused.allowed, refused.reset_after) == (False, 20)
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


@pytest.mark.parametrize("text", ["", "60", "sixty/minute", "60/fortnight", "60/ms", "0/minute", "60/0s"])
async def test_parse_rate_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError, match=r"Invalid rate|at least 1"):
        parse_rate(text)
