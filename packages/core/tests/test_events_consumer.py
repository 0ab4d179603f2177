"""Consumers in process (`Consumer.deliver` / `handle`): each event takes effect once, a failing handler
is retried and then dead-lettered, a poison message is dead-lettered at once."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text

from starling_core.db import DatabaseUnavailable
from starling_core.events import Consumer, Event, EventFailed, Inbox, Outcome, Received
from starling_core.events.inbox import CHUNK
from starling_testkit import BoundDatabase, FakePublisher

from .ledgerapp import ENTRY_RECORDED, EntryRecorded, LedgerRepositories, LedgerService, LedgerStores


class Sleeps:
    def __init__(self) -> None:
        self.slept: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.slept.append(seconds)


@pytest.fixture
def stores(app_database: BoundDatabase) -> LedgerStores:
    return LedgerStores(app_database)


@pytest.fixture
def ledger(stores: LedgerStores) -> LedgerService:
    return LedgerService(stores)


def entry(amount: int = 5, entry_id: str = "e1") -> Event[EntryRecorded]:
    return ENTRY_RECORDED.new("alice", EntryRecorded(entry_id=entry_id, account="alice", amount=amount))


async def balance(ledger: LedgerService) -> tuple[int, int]:
    found = await ledger.balance("alice")
    return (found.entries, found.total) if found is not None else (0, 0)


async def test_an_event_delivered_twice_takes_effect_once(
    stores: LedgerStores, ledger: LedgerService
) -> None:
    consumer = Consumer(stores, "balances").on(ENTRY_RECORDED, ledger.apply)
    event = entry()
    assert await consumer.deliver(event) == Outcome.HANDLED
    assert await consumer.deliver(event) == Outcome.DUPLICATE
    assert await balance(ledger) == (1, 5)
    # another group has its own inbox: it handles the same event once too
    other = Consumer(stores, "audit").on(ENTRY_RECORDED, ledger.apply)
    assert await other.deliver(event) == Outcome.HANDLED
    assert (consumer.status.handled, consumer.status.duplicates) == (1, 1)


async def test_a_failing_handler_is_retried_with_backoff_and_its_failed_writes_roll_back(
    stores: LedgerStores, ledger: LedgerService
) -> None:
    calls = 0

    async def flaky(event: Event[EntryRecorded], stored: LedgerRepositories) -> None:
        nonlocal calls
        calls += 1
        await ledger.apply(event, stored)  # written, then undone with the failed attempt
        if calls < 3:
            raise RuntimeError("downstream hiccup")

    sleeps = Sleeps()
    consumer = Consumer(stores, "balances", retry_delays=(0.1, 1.0, 5.0), sleep=sleeps).on(
        ENTRY_RECORDED, flaky
    )
    assert await consumer.deliver(entry()) == Outcome.HANDLED
    assert sleeps.slept == [0.1, 1.0]
    assert await balance(ledger) == (1, 5)


async def test_an_event_that_keeps_failing_goes_to_the_dead_letter_topic(
    stores: LedgerStores, ledger: LedgerService
) -> None:
    async def broken(event: Event[EntryRecorded], stored: LedgerRepositories) -> None:
        await ledger.apply(event, stored)
        raise ValueError("cannot handle this one")

    sleeps = Sleeps()
    consumer = Consumer(stores, "balances", retry_delays=(0.1, 0.2), sleep=sleeps).on(ENTRY_RECORDED, broken)
    event = entry()
    message = Received("ledger.entries", "alice", event.to_json(), partition=2, offset=41)
    dead_letters = FakePublisher()
    assert await consumer.handle(message, dead_letters) == Outcome.DEAD_LETTERED
    [dead] = dead_letters.published
    assert (dead.topic, dead.key, dead.value) == ("ledger.entries.dlq", "alice", message.value)
    headers = dict(dead.headers)
    assert headers["error"] == b"ValueError: cannot handle this one"
    assert consumer.status.last_error == "ValueError"  # what /health shows anyone: never the text
    assert (headers["original-topic"], headers["original-partition"], headers["original-offset"]) == (
        b"ledger.entries",
        b"2",
        b"41",
    )
    assert (headers["consumer"], headers["attempts"]) == (b"balances", b"3")
    assert sleeps.slept == [0.1, 0.2]
    assert await balance(ledger) == (0, 0)  # no attempt's writes survived
    async with stores.database.session() as session:  # nor an inbox row: a replay from the DLQ is handled
        assert (await session.execute(text("SELECT count(*) FROM inbox_events"))).scalar_one() == 0
    # handed over in process, with no dead-letter topic to go to, the failure is raised
    with pytest.raises(EventFailed, match="cannot handle this one"):
        await consumer.deliver(event)


@pytest.mark.parametrize(
    "value",
    [b"not json", b'{"id": "x"}', entry().to_json().replace(b'"amount":5', b'"amount":"five"')],
    ids=["not-json", "not-an-envelope", "invalid-payload"],
)
async def test_a_poison_message_is_dead_lettered_at_once(
    stores: LedgerStores, ledger: LedgerService, value: bytes
) -> None:
    sleeps = Sleeps()
    consumer = Consumer(stores, "balances", sleep=sleeps).on(ENTRY_RECORDED, ledger.apply)
    dead_letters = FakePublisher()
    assert (
        await consumer.handle(Received("ledger.entries", "k", value), dead_letters) == Outcome.DEAD_LETTERED
    )
    assert [message.value for message in dead_letters.published] == [value]
    assert dict(dead_letters.published[0].headers)["attempts"] == b"0"
    assert sleeps.slept == []


async def test_an_event_no_handler_is_for_is_ignored(stores: LedgerStores, ledger: LedgerService) -> None:
    consumer = Consumer(stores, "balances").on(ENTRY_RECORDED, ledger.apply)
    other = Event[dict[str, object]](type="entry.deleted", key="alice", payload={})
    assert await consumer.handle(Received("ledger.entries", "alice", other.to_json())) == Outcome.IGNORED
    assert consumer.topics == ["ledger.entries"]


async def test_an_unreachable_database_is_waited_out_not_dead_lettered(
    stores: LedgerStores, ledger: LedgerService
) -> None:
    calls = 0

    async def database_down_once(event: Event[EntryRecorded], stored: LedgerRepositories) -> None:
        nonlocal calls
        calls += 1
        if calls <= 5:  # more failures than there are retries
            raise DatabaseUnavailable("database unavailable: ConnectionRefusedError")
        await ledger.apply(event, stored)

    sleeps = Sleeps()
    consumer = Consumer(stores, "balances", retry_delays=(0.1,), sleep=sleeps).on(
        ENTRY_RECORDED, database_down_once
    )
    assert await consumer.deliver(entry()) == Outcome.HANDLED
    assert sleeps.slept == [0.1, 0.2, 0.4, 0.8, 1.6]
    assert await balance(ledger) == (1, 5)


def received(event: Event[EntryRecorded], offset: int) -> Received:
    return Received("ledger.entries", event.key, event.to_json(), offset=offset)


async def test_a_batch_is_one_transaction_and_a_repeated_event_in_it_counts_once(
    stores: LedgerStores, ledger: LedgerService, app_database: BoundDatabase
) -> None:
    events = [entry(amount, f"e{amount}") for amount in (1, 2, 3)]
    consumer = Consumer(stores, "balances").on(ENTRY_RECORDED, ledger.apply)
    batch = [received(event, offset) for offset, event in enumerate([*events, events[0]])]

    await consumer.handle_batch(batch)

    assert await balance(ledger) == (3, 6)
    assert (consumer.status.handled, consumer.status.duplicates) == (3, 1)


@contextmanager
def inbox_inserts(database: BoundDatabase) -> Iterator[list[str]]:
    """The INSERT statements sent to the inbox table while the block runs."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        if (statement := args[2]).lstrip().upper().startswith("INSERT INTO INBOX_EVENTS"):
            sent.append(statement)

    engine = database.connection.engine.sync_engine
    sqlalchemy_event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sqlalchemy_event.remove(engine, "before_cursor_execute", record)


async def test_a_batch_claims_its_events_with_one_statement_and_skips_those_handled_before(
    stores: LedgerStores, ledger: LedgerService, app_database: BoundDatabase
) -> None:
    consumer = Consumer(stores, "balances").on(ENTRY_RECORDED, ledger.apply)
    events = [entry(amount, f"e{amount}") for amount in range(1, 21)]
    assert await consumer.deliver(events[4]) == Outcome.HANDLED  # e5 came before, alone

    with inbox_inserts(app_database) as sent:
        await consumer.handle_batch([received(event, offset) for offset, event in enumerate(events)])

    assert len(sent) == 1
    assert await balance(ledger) == (20, sum(range(1, 21)))  # e5 counted once
    assert (consumer.status.handled, consumer.status.duplicates) == (20, 1)


async def test_the_inbox_claims_a_batch_larger_than_a_statement_holds(app_database: BoundDatabase) -> None:
    ids = [f"event-{n}" for n in range(CHUNK * 2 + 10)]
    handled_before = {ids[7], ids[-1]}
    async with app_database.transaction() as session:
        first = await Inbox(session).claim_many("balances", [(event_id, "t") for event_id in handled_before])
    assert first == handled_before

    with inbox_inserts(app_database) as sent:
        async with app_database.transaction() as session:
            claimed = await Inbox(session).claim_many("balances", [(event_id, "t") for event_id in ids])

    assert len(sent) == 3
    assert claimed == set(ids) - handled_before
    async with app_database.transaction() as session:  # another group's inbox is its own
        assert await Inbox(session).claim_many("audit", [(ids[7], "t")]) == {ids[7]}
        assert await Inbox(session).claim("balances", ids[0], "t") is False


async def test_a_batch_whose_handler_fails_is_rolled_back_and_handled_one_event_at_a_time(
    stores: LedgerStores, ledger: LedgerService
) -> None:
    calls: list[str] = []

    async def fails_once_on_e2(event: Event[EntryRecorded], stored: LedgerRepositories) -> None:
        calls.append(event.payload.entry_id)
        await ledger.apply(event, stored)
        if calls.count("e2") == 1 and event.payload.entry_id == "e2":
            raise RuntimeError("downstream hiccup")

    sleeps = Sleeps()
    consumer = Consumer(stores, "balances", sleep=sleeps).on(ENTRY_RECORDED, fails_once_on_e2)
    events = [entry(amount, f"e{amount}") for amount in (1, 2, 3)]

    await consumer.handle_batch([received(event, offset) for offset, event in enumerate(events)])

    # together (e1, e2 fails: all rolled back), then one by one: e1, e2 (now succeeds), e3
    assert calls == ["e1", "e2", "e1", "e2", "e3"]
    assert sleeps.slept == []  # the one-by-one pass succeeded at once: nothing to retry
    assert await balance(ledger) == (3, 6)  # e1's first write went with the rolled-back batch
    assert (consumer.status.handled, consumer.status.duplicates) == (3, 0)


async def test_a_poison_message_in_a_batch_is_dead_lettered_and_the_rest_handled_together(
    stores: LedgerStores, ledger: LedgerService
) -> None:
    dead_letters = FakePublisher()
    consumer = Consumer(stores, "balances").on(ENTRY_RECORDED, ledger.apply)
    poison = Received("ledger.entries", "alice", b"{not an envelope", offset=1)

    await consumer.handle_batch(
        [received(entry(1, "e1"), 0), poison, received(entry(2, "e2"), 2)], dead_letters
    )

    assert await balance(ledger) == (2, 3)
    assert consumer.status.dead_lettered == 1
    assert [message.value for message in dead_letters.published] == [b"{not an envelope"]
