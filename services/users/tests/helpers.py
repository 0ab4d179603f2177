"""Small helpers shared by the users tests."""

from __future__ import annotations

import httpx
from argon2 import PasswordHasher

from starling_users.passwords import Passwords

PASSWORD = "correct horse battery"


def fast_passwords() -> Passwords:
    return Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


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
