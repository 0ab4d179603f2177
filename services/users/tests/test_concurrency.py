"""The database, not a look-up, decides who gets an email address."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from starling_core.app import ServiceApp
from starling_testkit import BoundDatabase
from starling_testkit.tokens import TokenFactory
from starling_users.app import create_app
from starling_users.settings import UsersSettings

from .helpers import PASSWORD, fast_passwords, register


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


class GatedPasswords:
    """Fast hashing that, once `gated`, waits for `gate` inside `hash`: an Argon2id hash in progress."""

    def __init__(self) -> None:
        self.inner = fast_passwords()
        self.gated = False
        self.hashing = asyncio.Event()
        self.gate = asyncio.Event()

    async def hash(self, password: str) -> str:
        if self.gated:
            self.hashing.set()
            await self.gate.wait()
        return await self.inner.hash(password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self.inner.verify(password_hash, password)

    async def dummy_verify(self, password: str) -> None:
        await self.inner.dummy_verify(password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.inner.needs_rehash(password_hash)


@pytest.fixture
def passwords() -> GatedPasswords:
    return GatedPasswords()


@pytest.fixture
def app(app_settings: UsersSettings, app_database: BoundDatabase, passwords: GatedPasswords) -> ServiceApp:
    """The kit's app, hashing through `passwords`."""
    return create_app(app_settings, database=app_database, passwords=passwords)


async def test_a_password_being_hashed_holds_up_no_other_request(
    passwords: GatedPasswords, client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    # On one connection (the test's) sessions take turns, so a registration that hashed inside its
    # transaction would hold every other request until the hash was done.
    ada = await register(client)
    passwords.gated = True
    registering = asyncio.create_task(
        client.post("/users", json={"name": "Bo", "email": "bo@example.com", "password": PASSWORD})
    )
    try:
        await asyncio.wait_for(passwords.hashing.wait(), timeout=5)
        headers = {"Authorization": f"Bearer {token_factory(sub=ada['id'])}"}
        me = await asyncio.wait_for(client.get("/users/me", headers=headers), timeout=5)
        login = await asyncio.wait_for(
            client.post("/auth/token", json={"email": "ada@example.com", "password": PASSWORD}), timeout=5
        )
    finally:
        passwords.gate.set()
    assert (me.status_code, login.status_code) == (200, 200)
    assert (await registering).status_code == 201
