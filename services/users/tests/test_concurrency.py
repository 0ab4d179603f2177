"""The database, not a look-up, decides who gets an email address."""

from __future__ import annotations

import asyncio

import httpx

from .helpers import PASSWORD


async def test_second_concurrent_registration_gets_409(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    emails = ["ada@example.com", "ADA@example.com", "Ada@Example.com", "ada@EXAMPLE.com", "aDa@example.cOm"]
    responses = await asyncio.gather(
        *(client.post("/users", json={"name": "Ada", "email": e, "password": PASSWORD}) for e in emails)
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    listed = (await admin_client.get("/users")).json()
    assert len(listed["items"]) == 1
