"""The events port against a real Kafka-protocol broker (the kit's `kafka_broker`): the adapters, order
per key, committed offsets, and the outbox, relay and inbox holding through a relay or a consumer
that dies half-way, and through a poison message."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from starling_core.events import Consumer, Event, Message, Received, Relay
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_core.settings import ServiceSettings
from starling_testkit import AppFactory, BoundDatabase
from starling_testkit.events import KafkaNames

from .ledgerapp import (
    ENTRY_RECORDED,
    EntryRecorded,
    LedgerRepositories,
    LedgerService,
    LedgerSettings,
    LedgerStores,
    build_ledger,
)
from .polling import TIMEOUT, eventually


@pytest.fixture
def app_factory() -> AppFactory:
    return build_ledger


@pytest.fixture
def app_settings(app_settings: ServiceSettings, kafka_settings: dict[str, Any]) -> ServiceSettings:
    return app_settings.model_copy(update=kafka_settings)


@pytest.fixture
def broker(kafka_settings: dict[str, Any]) -> KafkaBroker:
    options = KafkaOptions.from_settings(LedgerSettings(**kafka_settings))
    assert options is not None
    return KafkaBroker(options)


@pytest.fixture
def ledger(app_database: BoundDatabase) -> LedgerService:
    return LedgerService(LedgerStores(app_database))


async def fetch(broker: KafkaBroker, topic: str, group: str, count: int) -> list[Received]:
    """The first `count` messages a new `group` reads from `topic`."""
    received: list[Received] = []
    async with broker.subscription([topic], group) as subscription, asyncio.timeout(TIMEOUT):
        while len(received) < count:
            received += await subscription.fetch(0.5)
    return received


@contextlib.asynccontextmanager
async def running(work: Awaitable[None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.ensure_future(work)
    task.set_name(name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def balance(ledger: LedgerService, account: str) -> tuple[int, int]:
    found = await ledger.balance(account)
    return (found.entries, found.total) if found is not None else (0, 0)


# --- the adapters ---------------------------------------------------------------------------------------


async def test_the_adapters_produce_and_consume_keys_values_and_headers(broker: KafkaBroker) -> None:
    sent = [
        Message("t", f"k{n}", f"v{n}".encode(), (("type", b"x"), ("n", str(n).encode()))) for n in range(3)
    ]
    async with broker.publisher() as publisher:
        await publisher.publish(sent)
    received = await fetch(broker, "t", "g", 3)
    assert sorted((m.topic, m.key, m.value, m.headers) for m in received) == [
        (m.topic, m.key, m.value, m.headers) for m in sent
    ]


async def test_one_keys_messages_arrive_in_the_order_they_were_sent(broker: KafkaBroker) -> None:
    keys = [f"key-{n}" for n in range(8)]
    async with broker.publisher() as publisher:
        for batch in range(5):
            await publisher.publish(
                [Message("t", key, f"{batch}.{i}".encode()) for i in range(5) for key in keys]
            )
    received = await fetch(broker, "t", "g", 5 * 5 * len(keys))
    for key in keys:
        mine = [m for m in received if m.key == key]
        assert [m.value.decode() for m in mine] == [f"{b}.{i}" for b in range(5) for i in range(5)]
        assert len({m.partition for m in mine}) == 1
    assert len({m.partition for m in received}) > 1  # the keys did spread over partitions


async def test_a_keys_messages_over_several_batches_stay_in_order(broker: KafkaBroker) -> None:
    big = b"x" * 2048  # 300 of them fill more than one 256 KiB batch
    async with broker.publisher() as publisher:
        await publisher.publish([Message("t", "one-key", str(n).encode() + big) for n in range(300)])
    received = await fetch(broker, "t", "g", 300)
    assert [m.value.removesuffix(big) for m in received] == [str(n).encode() for n in range(300)]


async def test_keys_go_to_the_partitions_kafkas_own_clients_choose(
    broker: KafkaBroker, kafka_broker: str, kafka_names: KafkaNames
) -> None:
    keys = [f"key-{n}" for n in range(12)]
    async with broker.publisher() as publisher:
        await publisher.publish([Message("ours", key, b"") for key in keys])
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, enable_idempotence=False)
    await producer.start()
    try:
        theirs = {
            key: (await producer.send_and_wait(kafka_names.topic("theirs"), b"", key=key.encode())).partition
            for key in keys
        }
    finally:
        await producer.stop()
    ours = {m.key: m.partition for m in await fetch(broker, "ours", "g", len(keys))}
    assert ours == theirs


async def test_a_consumer_resumes_from_its_committed_offset(broker: KafkaBroker) -> None:
    async with broker.publisher() as publisher:
        await publisher.publish([Message("t", "one-key", str(n).encode()) for n in range(10)])
    async with broker.subscription(["t"], "g") as first, asyncio.timeout(TIMEOUT):
        seen: list[Received] = []
        while len(seen) < 4:
            seen += await first.fetch(0.5)
        await first.commit(seen[:4])  # handled four, then went away
    rest = await fetch(broker, "t", "g", 6)
    assert [m.value for m in rest] == [str(n).encode() for n in range(4, 10)]


# --- outbox, relay and inbox over the broker ----------------------------------------------------------


async def test_entries_reach_the_consumer_through_outbox_broker_and_inbox(client: httpx.AsyncClient) -> None:
    for n in range(10):
        response = await client.post(
            "/api/entries", json={"entry_id": f"e{n}", "account": f"acc{n % 2}", "amount": n}
        )
        assert response.status_code == 201

    async def handled() -> bool:  # /health is not rate limited, so it can be polled
        events = (await client.get("/health")).json()["details"]["events"]
        return bool(events["consumers"]["ledger-balances"]["handled"] == 10)

    await eventually(handled, "the consumer handled all ten")
    assert (await client.get("/api/balances/acc1")).json()["entries"] == 5
    assert (await client.get("/api/balances/acc0")).json()["total"] == 0 + 2 + 4 + 6 + 8
    events = (await client.get("/health")).json()["details"]["events"]
    assert events["outbox"]["pending"] == 0
    assert events["relay"]["sent"] == 10
    consumer = events["consumers"]["ledger-balances"]
    assert (consumer["handled"], consumer["duplicates"], consumer["dead_lettered"]) == (10, 0, 0)
    assert consumer["state"] == "running"


class DiesAfterSending:
    def __init__(self, publisher: Any) -> None:
        self.publisher = publisher

    async def publish(self, messages: Sequence[Message]) -> None:
        await self.publisher.publish(messages)  # the broker has them ...
        raise asyncio.CancelledError  # ... and the relay's process dies before marking them


async def test_a_relay_dying_between_send_and_mark_is_redelivered_and_counted_once(
    broker: KafkaBroker, ledger: LedgerService, app_database: BoundDatabase
) -> None:
    for n in range(6):
        await ledger.record(f"e{n}", "acc", 1)
    async with broker.publisher() as publisher:
        with pytest.raises(asyncio.CancelledError):
            await Relay(app_database).deliver_once(DiesAfterSending(publisher))
        assert await Relay(app_database).drain(publisher) == 6  # the next relay sends all six again
    consumer = Consumer(LedgerStores(app_database), "balances").on(ENTRY_RECORDED, ledger.apply)
    async with running(consumer.consume(broker), "consumer"):
        await eventually(lambda: _seen(consumer, 12), "twelve deliveries")
    assert (consumer.status.handled, consumer.status.duplicates) == (6, 6)
    assert await balance(ledger, "acc") == (6, 6)


async def _seen(consumer: Consumer[Any], count: int) -> bool:
    return consumer.status.handled + consumer.status.duplicates >= count


async def test_a_consumer_killed_mid_batch_resumes_with_nothing_lost_or_doubled(
    broker: KafkaBroker, ledger: LedgerService, app_database: BoundDatabase
) -> None:
    for n in range(20):
        await ledger.record(f"e{n}", "acc", n)
    async with broker.publisher() as publisher:
        assert await Relay(app_database).drain(publisher) == 20
    stores = LedgerStores(app_database)
    stuck = asyncio.Event()
    calls = 0

    async def dies_on_the_eighth(event: Event[EntryRecorded], stored: LedgerRepositories) -> None:
        nonlocal calls
        calls += 1
        if calls == 8:
            stuck.set()
            await asyncio.Future()  # hangs inside its transaction until the process is killed
        await ledger.apply(event, stored)

    first = Consumer(stores, "balances").on(ENTRY_RECORDED, dies_on_the_eighth)
    async with running(first.consume(broker), "first consumer"), asyncio.timeout(TIMEOUT):
        await stuck.wait()
    # the eighth event's batch died in its transaction: whatever of it was written is rolled back, and
    # its offsets were never committed; batches before it (if the broker handed out smaller ones) stand
    assert first.status.handled < 8

    second = Consumer(stores, "balances").on(ENTRY_RECORDED, ledger.apply)
    async with running(second.consume(broker), "second consumer"):
        await eventually(lambda: _seen(second, 20 - first.status.handled), "everything not yet handled")
    assert first.status.handled + second.status.handled == 20  # each event took effect once
    assert await balance(ledger, "acc") == (20, sum(range(20)))


async def test_a_poison_message_lands_in_the_dead_letter_topic_and_the_rest_go_on(
    broker: KafkaBroker, ledger: LedgerService, app_database: BoundDatabase
) -> None:
    good = ENTRY_RECORDED.new("acc", EntryRecorded(entry_id="e1", account="acc", amount=3))
    async with broker.publisher() as publisher:
        await publisher.publish(
            [
                Message("ledger.entries", "acc", b"{not an envelope"),
                Message("ledger.entries", "acc", good.to_json()),
            ]
        )
    consumer = Consumer(LedgerStores(app_database), "balances").on(ENTRY_RECORDED, ledger.apply)
    async with running(consumer.consume(broker), "consumer"):
        await eventually(lambda: _handled(consumer), "the good event")
    assert consumer.status.dead_lettered == 1
    [dead] = await fetch(broker, "ledger.entries.dlq", "inspector", 1)
    assert dead.value == b"{not an envelope"
    assert dict(dead.headers)["consumer"] == b"balances"
    assert dict(dead.headers)["error"].startswith(b"not an event envelope")
    assert await balance(ledger, "acc") == (1, 3)


async def _handled(consumer: Consumer[Any]) -> bool:
    return consumer.status.handled >= 1
