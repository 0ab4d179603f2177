"""Small helpers shared by the users tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp

from starling_users.passwords import Passwords

PASSWORD = "correct horse battery"

# What the spec grants each role while STARLING_USERS_ROLE_SCOPES is unset.
USER_SCOPES = ["agent:run", "agent:read", "reports:read", "assessments:read", "assessments:write"]
ADMIN_SCOPES = [
    *("agent:run", "agent:read", "agent:admin", "users:admin", "reports:read", "reports:write"),
    *("assessments:read", "assessments:write", "assessments:admin"),
]


def fast_passwords() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@asynccontextmanager
async def started(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` with its lifespan run, for a test that builds an app of its own."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def register(
    client: httpx.AsyncClient, email: str = "ada@example.com", name: str = "Ada", password: str = PASSWORD
) -> dict[str, str]:
    response = await client.post("/users", json={"name": name, "email": email, "password": password})
    assert response.status_code == 201, response.text
    user: dict[str, str] = response.json()
    return user


async def login(client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD) -> str:
    response = await client.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
