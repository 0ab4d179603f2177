"""A tiny service that publishes and consumes events through core's port, in the service shape
(errors, repository, service, app): the worked example of packages/core/README.md ("Events").

`POST /api/entries` records an entry and, in the same transaction, an `entry.recorded` event in the
outbox; the app's own consumer group `ledger-balances` adds each event to its account's balance once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypedDict

from pydantic import BaseModel, Field
from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.routing import Route

from starling_core.app import ServiceApp, create_app
from starling_core.db import Base, Database, new_metadata
from starling_core.errors import DomainError
from starling_core.events import Consumer, Event, Events, EventType, Outbox
from starling_core.operations import operation
from starling_core.repository import Repository, Stores
from starling_core.settings import ServiceSettings

# --- the contract (for a real topic: starling_core.events.topics) ------------------------------------

LEDGER_ENTRIES = "ledger.entries"


class EntryRecorded(BaseModel):
    entry_id: str
    account: str
    amount: int


ENTRY_RECORDED = EventType("entry.recorded", LEDGER_ENTRIES, EntryRecorded)


# --- models.py -----------------------------------------------------------------------------------------


class LedgerBase(Base):
    __abstract__ = True
    metadata = new_metadata()


class Entry(LedgerBase):
    __tablename__ = "ledger_entries"

    entry_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account: Mapped[str] = mapped_column(String(50))
    amount: Mapped[int]


class Balance(LedgerBase):
    __tablename__ = "ledger_balances"

    account: Mapped[str] = mapped_column(String(50), primary_key=True)
    total: Mapped[int] = mapped_column(default=0)
    entries: Mapped[int] = mapped_column(default=0)


# --- errors.py -----------------------------------------------------------------------------------------


class DuplicateEntry(DomainError):
    status_code = 409

    def __init__(self, entry_id: str) -> None:
        super().__init__(f"Entry {entry_id} exists already")


# --- repository.py: the only module with SQL; the outbox is one more repository -------------------------


class EntryRepository(Repository[Entry]):
    model = Entry


class BalanceRepository(Repository[Balance]):
    model = Balance

    async def add_entry(self, account: str, amount: int) -> None:
        balance = await self.get(account) or await self.add(Balance(account=account, total=0, entries=0))
        balance.total += amount
        balance.entries += 1
        await self.session.flush()


@dataclass(frozen=True)
class LedgerRepositories:
    entries: EntryRepository
    balances: BalanceRepository
    outbox: Outbox

    @classmethod
    def on(cls, session: AsyncSession) -> LedgerRepositories:
        return cls(EntryRepository(session), BalanceRepository(session), Outbox(session))


class LedgerStores(Stores[LedgerRepositories]):
    def __init__(self, database: Database) -> None:
        super().__init__(database, LedgerRepositories.on)


# --- service.py ----------------------------------------------------------------------------------------


class LedgerService:
    def __init__(self, stores: LedgerStores) -> None:
        self.stores = stores

    async def record(self, entry_id: str, account: str, amount: int) -> None:
        """The entry and its event commit together, or neither does."""
        async with self.stores.writing() as stored:
            if await stored.entries.get(entry_id) is not None:
                raise DuplicateEntry(entry_id)
            await stored.entries.add(Entry(entry_id=entry_id, account=account, amount=amount))
            payload = EntryRecorded(entry_id=entry_id, account=account, amount=amount)
            await stored.outbox.add(ENTRY_RECORDED, key=account, payload=payload)

    async def apply(self, event: Event[EntryRecorded], stored: LedgerRepositories) -> None:
        """The consumer's handler: runs in the transaction that also records the event in the inbox."""
        await stored.balances.add_entry(event.payload.account, event.payload.amount)

    async def balance(self, account: str) -> Balance | None:
        async with self.stores.reading() as stored:
            return await stored.balances.get(account)


# --- routes.py and app.py ------------------------------------------------------------------------------


class LedgerSettings(ServiceSettings):
    service_name: str = "ledger"


class LedgerState(TypedDict):
    ledger: LedgerService
    events: Events


class EntryIn(BaseModel):
    entry_id: str = Field(min_length=1, max_length=36)
    account: str = Field(min_length=1, max_length=50)
    amount: int


class BalanceOut(BaseModel):
    account: str
    total: int
    entries: int


@operation(body=EntryIn, status_code=201, errors=[409])
async def record_entry(request: Request[LedgerState], body: EntryIn) -> None:
    """Record an entry."""
    await request.state["ledger"].record(body.entry_id, body.account, body.amount)


@operation(response=BalanceOut)
async def read_balance(request: Request[LedgerState]) -> BalanceOut:
    """An account's balance as the consumer has it (zero until its events are handled)."""
    account = request.path_params["account"]
    found = await request.state["ledger"].balance(account)
    if found is None:
        return BalanceOut(account=account, total=0, entries=0)
    return BalanceOut(account=found.account, total=found.total, entries=found.entries)


def build_ledger(settings: LedgerSettings, *, database: Database | None = None) -> ServiceApp:
    events = Events(settings, poll_interval=0.05)

    @asynccontextmanager
    async def lifespan(database: Database) -> AsyncIterator[LedgerState]:
        stores = LedgerStores(database)
        ledger = LedgerService(stores)
        balances = Consumer(stores, "ledger-balances", retry_delays=(0.01, 0.01)).on(
            ENTRY_RECORDED, ledger.apply
        )
        async with events.consuming(balances):
            yield {"ledger": ledger, "events": events}

    return create_app(
        settings,
        database=database,
        lifespan=lifespan,
        events=events,
        routes=[
            Route("/api/entries", record_entry, methods=["POST"]),
            Route("/api/balances/{account}", read_balance, methods=["GET"]),
        ],
    )
