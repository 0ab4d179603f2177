"""The database, not a look-up, decides who gets an email address and who stays administrator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine

from starling_core import schema as core_schema
from starling_core.app import ServiceApp
from starling_core.db import Database
from starling_testkit import BoundDatabase
from starling_testkit.server import truncate
from starling_users.app import create_app
from starling_users.errors import LastAdministrator
from starling_users.models import ADMIN
from starling_users.repository import DatabaseUserStores, UserRepository
from starling_users.schemas import UserCreate, UserUpdate
from starling_users.service import UsersService
from starling_users.settings import UsersSettings
from starling_users.tokens import Credentials

from .helpers import PASSWORD, bearer, fast_passwords, login, register


async def test_second_concurrent_registration_gets_409(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    emails = ["ada@example.com", "ADA@example.com", "Ada@Example.com", "ada@EXAMPLE.com", "aDa@example.cOm"]
    responses = await asyncio.gather(
        *(client.post("/users", json={"name": "Ada", "email": e, "password": PASSWORD}) for e in emails)
    )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409]
    listed = (await admin_client.get("/users")).json()
    assert len([user for user in listed["items"] if user["role"] == "user"]) == 1


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
    passwords: GatedPasswords, client: httpx.AsyncClient
) -> None:
    # On one connection (the test's) sessions take turns, so a registration that hashed inside its
    # transaction would hold every other request until the hash was done.
    await register(client)
    token = await login(client)
    passwords.gated = True
    registering = asyncio.create_task(
        client.post("/users", json={"name": "Bo", "email": "bo@example.com", "password": PASSWORD})
    )
    try:
        await asyncio.wait_for(passwords.hashing.wait(), timeout=5)
        me = await asyncio.wait_for(client.get("/users/me", headers=bearer(token)), timeout=5)
        signing_in = await asyncio.wait_for(
            client.post("/auth/token", json={"email": "ada@example.com", "password": PASSWORD}), timeout=5
        )
    finally:
        passwords.gate.set()
    assert (me.status_code, signing_in.status_code) == (200, 200)
    assert (await registering).status_code == 201


# --- the last administrator, with real transactions ------------------------------------------------


class HeldCommit:
    """The real stores, whose next write transaction, its work done, waits for `release` to commit."""

    def __init__(self, database: Database) -> None:
        self.inner = DatabaseUserStores(database)
        self.hold_next = False
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    def reading(self) -> AbstractAsyncContextManager[UserRepository]:
        return self.inner.reading()

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[UserRepository]:
        async with self.inner.writing() as users:
            yield users
            if self.hold_next:
                self.hold_next = False
                self.holding.set()
                await self.release.wait()


@pytest_asyncio.fixture(loop_scope="session")
async def committing_database(db_engine: AsyncEngine, db_metadata: MetaData) -> AsyncIterator[Database]:
    """The worker's database itself, outside any test transaction: what two connections see.
    Its tables are emptied afterwards, as `live_server` does."""
    try:
        yield Database(db_engine)
    finally:
        await truncate(db_engine, db_metadata)
        await truncate(db_engine, core_schema.metadata)  # the events those commits wrote to the outbox


async def lock_waits(engine: AsyncEngine) -> int:
    """How many statements wait for a lock another transaction holds (PostgreSQL)."""
    async with engine.connect() as connection:
        return int(await connection.scalar(text("SELECT count(*) FROM pg_locks WHERE NOT granted")) or 0)


async def waiting_or_done(task: asyncio.Task[object], database: Database) -> None:
    """Until `task` waits on a lock (PostgreSQL) or has finished; SQLite runs one write at a time anyway."""
    if database.engine.dialect.name != "postgresql":
        return
    async with asyncio.timeout(10):
        while not await lock_waits(database.engine):
            finished, _ = await asyncio.wait({task}, timeout=0.01)
            if finished:
                return


async def test_two_concurrent_demotions_of_the_last_two_admins_cannot_both_succeed(
    committing_database: Database,
) -> None:
    stores = HeldCommit(committing_database)
    service = UsersService(stores, fast_passwords())
    first = await service.register(UserCreate(name="A", email="a@example.com", password=PASSWORD), role=ADMIN)
    second = await service.register(
        UserCreate(name="B", email="b@example.com", password=PASSWORD), role=ADMIN
    )

    stores.hold_next = True
    demote_first = asyncio.create_task(
        service.update(Credentials(first.id, 0), first.id, UserUpdate(role="user"))
    )
    await asyncio.wait_for(stores.holding.wait(), timeout=10)  # written, not yet committed
    demote_second = asyncio.create_task(
        service.update(Credentials(second.id, 0), second.id, UserUpdate(role="user"))
    )
    await waiting_or_done(demote_second, committing_database)
    stores.release.set()
    demoted, refused = await asyncio.gather(demote_first, demote_second, return_exceptions=True)

    assert not isinstance(demoted, BaseException)
    assert demoted.role == "user"
    assert isinstance(refused, LastAdministrator)
    async with committing_database.session() as session:
        assert (await UserRepository(session).lock_admins()) == [second.id]
