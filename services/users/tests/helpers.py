"""Small helpers shared by the users tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
from argon2 import PasswordHasher
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp

from starling_users.models import User
from starling_users.passwords import Passwords

PASSWORD = "correct horse battery"
BASE_URL = "http://testserver"

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
    async with LifespanManager(app) as manager, client_with(manager.app) as client:
        yield client


def client_with(app: ASGIApp, token: str | None = None, base_url: str = BASE_URL) -> httpx.AsyncClient:
    """A client of a started `app`, sending `token` with every request."""
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=bearer(token) if token else {})


async def store_user(session: AsyncSession, user_id: str, *, role: str) -> User:
    """A user written straight into the test's transaction, at token version 0."""
    user = User(
        id=user_id,
        name=f"Test {role}",
        email=f"{user_id}@example.com",
        email_normalized=f"{user_id}@example.com",
        password_hash="$argon2id$not-a-real-hash",
        role=role,
        created_at=datetime.now(UTC),
        token_version=0,
    )
    session.add(user)
    await session.commit()
    return user


async def register(
    client: httpx.AsyncClient, email: str = "ada@example.com", name: str = "Ada", password: str = PASSWORD
) -> dict[str, str]:
    response = await client.post("/users", json={"name": name, "email": email, "password": password})
    assert response.status_code == 201, response.text
    user: dict[str, str] = response.json()
    return user


async def sign_in(
    client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD
) -> dict[str, str]:
    """The whole token answer of a password login: access and refresh token."""
    response = await client.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    answer: dict[str, str] = response.json()
    return answer


async def login(client: httpx.AsyncClient, email: str = "ada@example.com", password: str = PASSWORD) -> str:
    return (await sign_in(client, email, password))["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
