"""The outbox and the relay, without a broker: an event exists exactly when its write committed, and
the relay delivers it at least once, in order, marking what it sent."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from starling_core.db import Database
from starling_core.events import Consumer, Message, Outbox, Outcome, Relay
from starling_core.events.outbox import wake_on_commit
from starling_core.events.relay import RELAY_LOCK
from starling_testkit import BoundDatabase, FakePublisher
from starling_testkit.events import PublishedEvents

from .ledgerapp import ENTRY_RECORDED, DuplicateEntry, EntryRecorded, LedgerService, LedgerStores


@pytest.fixture
def ledger(app_database: BoundDatabase) -> LedgerService:
    return LedgerService(LedgerStores(app_database))


async def record(ledger: LedgerService, count: int, accounts: Sequence[str] = ("a", "b")) -> None:
    for n in range(count):
        await ledger.record(f"e{n}", accounts[n % len(accounts)], n)


async def pending(database: Database) -> int:
    async with database.session() as session:
        return (await Outbox(session).depth())[0]


async def test_an_event_is_written_with_the_write_it_announces(
    ledger: LedgerService, published_events: PublishedEvents
) -> None:
    await ledger.record("e1", "alice", 5)
    [event] = await published_events.of(ENTRY_RECORDED)
    assert (event.type, event.key) == ("entry.recorded", "alice")
    assert event.payload == EntryRecorded(entry_id="e1", account="alice", amount=5)


async def fails_after_adding_an_event(stores: LedgerStores) -> None:
    async with stores.writing() as stored:
        payload = EntryRecorded(entry_id="x", account="bob", amount=1)
        await stored.outbox.add(ENTRY_RECORDED, key="bob", payload=payload)
        raise RuntimeError("the write fails after the event was added")


async def test_a_write_that_rolls_back_publishes_nothing(
    ledger: LedgerService, app_database: BoundDatabase, published_events: PublishedEvents
) -> None:
    await ledger.record("e1", "alice", 5)
    with pytest.raises(DuplicateEntry):
        await ledger.record("e1", "alice", 5)
    with pytest.raises(RuntimeError):
        await fails_after_adding_an_event(LedgerStores(app_database))
    assert [event.payload["entry_id"] for event in await published_events.all()] == ["e1"]


async def test_a_commit_that_wrote_an_event_wakes_the_relay_at_once(
    ledger: LedgerService, app_database: BoundDatabase
) -> None:
    woken = asyncio.Event()
    wake_on_commit(woken)
    with pytest.raises(RuntimeError):
        await fails_after_adding_an_event(LedgerStores(app_database))
    assert not woken.is_set()  # rolled back: nothing to send
    await ledger.record("e1", "alice", 5)
    assert woken.is_set()


async def test_the_relay_delivers_in_order_and_marks_what_it_sent(
    ledger: LedgerService, app_database: BoundDatabase
) -> None:
    await record(ledger, 5)
    publisher = FakePublisher()
    relay = Relay(app_database, batch_size=2)
    assert await relay.drain(publisher) == 5
    assert [len(call) for call in publisher.calls] == [2, 2, 1]
    assert [event.payload["entry_id"] for event in publisher.events("ledger.entries")] == [
        f"e{n}" for n in range(5)
    ]
    assert [message.key for message in publisher.published] == ["a", "b", "a", "b", "a"]
    assert publisher.published[0].headers == (("type", b"entry.recorded"),)
    assert await pending(app_database) == 0
    assert await relay.drain(publisher) == 0
    assert relay.status.sent == 5


async def test_a_failed_send_leaves_the_events_waiting_and_counts_the_attempt(
    ledger: LedgerService, app_database: BoundDatabase
) -> None:
    await record(ledger, 3)
    publisher = FakePublisher()
    publisher.fail_on(1)
    with pytest.raises(ConnectionError):
        await Relay(app_database).deliver_once(publisher)
    assert await pending(app_database) == 3
    async with app_database.session() as session:
        rows = (await session.execute(text("SELECT attempts, last_error FROM outbox_events"))).all()
    assert rows == [(1, "ConnectionError: publisher failed on call 1")] * 3
    assert await Relay(app_database).drain(publisher) == 3
    assert await pending(app_database) == 0


class DiesAfterSending:
    """A publisher whose process dies once the broker has the messages, before the relay marks them."""

    def __init__(self, delivered: FakePublisher) -> None:
        self.delivered = delivered

    async def publish(self, messages: Sequence[Message]) -> None:
        await self.delivered.publish(messages)
        raise asyncio.CancelledError


async def test_a_relay_that_dies_between_send_and_mark_sends_again_and_the_inbox_absorbs_it(
    ledger: LedgerService, app_database: BoundDatabase
) -> None:
    await record(ledger, 4)
    broker = FakePublisher()
    with pytest.raises(asyncio.CancelledError):
        await Relay(app_database).deliver_once(DiesAfterSending(broker))
    assert await pending(app_database) == 4  # nothing was marked
    assert await Relay(app_database).drain(broker) == 4  # the next relay sends them all again
    assert len(broker.published) == 8

    consumer = Consumer(LedgerStores(app_database), "balances").on(ENTRY_RECORDED, ledger.apply)
    outcomes = [await consumer.deliver(ENTRY_RECORDED.parse(message.value)) for message in broker.published]
    assert outcomes == [Outcome.HANDLED] * 4 + [Outcome.DUPLICATE] * 4
    a, b = await ledger.balance("a"), await ledger.balance("b")
    assert a is not None
    assert b is not None
    assert ((a.entries, a.total), (b.entries, b.total)) == ((2, 0 + 2), (2, 1 + 3))


async def test_purging_forgets_sent_events_and_old_inbox_rows_only(
    ledger: LedgerService, app_database: BoundDatabase
) -> None:
    await record(ledger, 2)
    relay = Relay(app_database, batch_size=1, keep_sent=timedelta(hours=1), keep_handled=timedelta(days=1))
    await relay.deliver_once(FakePublisher())  # e0 sent, e1 waiting
    consumer = Consumer(LedgerStores(app_database), "balances").on(ENTRY_RECORDED, ledger.apply)
    await consumer.deliver(ENTRY_RECORDED.new("a", EntryRecorded(entry_id="x", account="a", amount=1)))
    await relay.purge(datetime.now(UTC) + timedelta(minutes=30))  # nothing is old enough yet
    await relay.purge(datetime.now(UTC) + timedelta(hours=2))  # e0 was sent over an hour before
    async with app_database.session() as session:
        assert [row.event_id for row in await Outbox(session).written()] != []
        assert len(await Outbox(session).written()) == 1
        assert (await session.execute(text("SELECT count(*) FROM inbox_events"))).scalar_one() == 1
    await relay.purge(datetime.now(UTC) + timedelta(days=2))
    async with app_database.session() as session:
        assert (await session.execute(text("SELECT count(*) FROM inbox_events"))).scalar_one() == 0
        assert await pending(app_database) == 1  # an unsent event is never purged


@contextlib.asynccontextmanager
async def another_process_relaying(db_engine: AsyncEngine) -> AsyncIterator[None]:
    """Hold the relay's turn as another process would: PostgreSQL's advisory lock, SQLite's lock file."""
    if db_engine.dialect.name == "postgresql":
        async with db_engine.connect() as other:
            await other.execute(text(f"SELECT pg_advisory_lock({RELAY_LOCK})"))
            yield
            await other.execute(text(f"SELECT pg_advisory_unlock({RELAY_LOCK})"))
        return
    with sqlite_turn_held(f"{db_engine.url.database}.relay-lock"):
        yield


@contextlib.contextmanager
def sqlite_turn_held(lock_file: str) -> Iterator[None]:
    with open(lock_file, "a+b") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


async def test_one_relay_delivers_at_a_time(
    ledger: LedgerService, app_database: BoundDatabase, db_engine: AsyncEngine
) -> None:
    await record(ledger, 1)
    relay = Relay(app_database)
    async with another_process_relaying(db_engine):
        assert await relay.deliver_once(FakePublisher()) == 0
        assert relay.status.state == "standby"
    assert await relay.deliver_once(FakePublisher()) == 1
