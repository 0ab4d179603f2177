"""One test (`inprocess.py` makes the project with one) that times requests alternately, in rounds,
through three in-process clients: the kit's `auth_client` on the users service's `GET /users/me` (the
whole middleware stack), a bare Starlette route doing the same read on the same connection, and a bare
`/health`. Per-round figures go to the JSON file named by BENCH_REQUESTS_OUT."""

from __future__ import annotations

import functools
import json
import os
import time
from datetime import UTC, datetime

import httpx
import pytest
from benchsizes import numbered
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_testkit.tokens import DEFAULT_SUB, TokenFactory
from starling_users.models import User

ROUNDS, BATCH = 9, 200  # alternating rounds of 200 requests through each client


@pytest.fixture
def token_factory(token_factory: TokenFactory) -> TokenFactory:
    """The kit's tokens at the version the test's user is stored with: the users service refuses a token
    that names none, as it refuses one from before a change of the user."""
    return functools.partial(token_factory, ver=0)


def bare_app(connection: AsyncConnection) -> Starlette:
    async def me(request: Request) -> JSONResponse:
        async with AsyncSession(bind=connection) as session:
            user = await session.get_one(User, DEFAULT_SUB)
            body = {
                "id": user.id,
                "name": user.name,
                "email": user.email,
                "role": user.role,
                "created_at": user.created_at.isoformat().replace("+00:00", "Z"),
            }
        return JSONResponse(body)

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"status": "healthy"})

    return Starlette(routes=[Route("/users/me", me), Route("/health", health)])


async def timed(client: httpx.AsyncClient, path: str) -> float:
    started = time.perf_counter()
    for _ in range(BATCH):
        response = await client.get(path)
        assert response.status_code == 200, response.text
    return (time.perf_counter() - started) / BATCH


async def _request_costs(
    auth_client: httpx.AsyncClient, db_connection: AsyncConnection, db_session: AsyncSession
) -> None:
    db_session.add(
        User(
            id=DEFAULT_SUB,
            name="Bench",
            email="bench@example.com",
            email_normalized="bench@example.com",
            password_hash="not-a-hash",
            role="user",
            created_at=datetime.now(UTC),
        )
    )
    await db_session.flush()
    transport = httpx.ASGITransport(app=bare_app(db_connection))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as bare:
        cases = {
            "kit_users_me": (auth_client, "/users/me"),
            "bare_read": (bare, "/users/me"),
            "bare_health": (bare, "/health"),
        }
        assert (await auth_client.get("/users/me")).json() == (await bare.get("/users/me")).json()
        for client, path in cases.values():  # warm-up: first-call caches, compiled statements
            await timed(client, path)
        seconds: dict[str, list[float]] = {name: [] for name in cases}
        for round_number in range(ROUNDS):
            order = list(cases) if round_number % 2 == 0 else list(reversed(cases))
            for name in order:
                seconds[name].append(await timed(*cases[name]))
    _save(seconds)


def _save(seconds: dict[str, list[float]]) -> None:
    with open(os.environ["BENCH_REQUESTS_OUT"], "w") as output:
        json.dump({"batch": BATCH, "seconds": seconds}, output)


globals().update(numbered(__name__, _request_costs))
