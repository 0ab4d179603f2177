"""A broker that comes back empty, its log and its groups' committed offsets lost (the kit's broker keeps
both in memory, so a restart on the same port is exactly that): a consumer that had committed offsets
goes on handling what is published afterwards, none of it skipped. And the rule that holds it: a
batch fetched before a rebalance is not committed after it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from typing import Any

import pytest
from aiokafka import TopicPartition

from starling_core.events import Consumer, Message, Publisher, Received, Relay, Subscription
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_servers import kafka as test_broker
from starling_testkit import BoundDatabase
from starling_testkit.events import FAST_GROUPS, KafkaNames

from .ledgerapp import ENTRY_RECORDED, LedgerService, LedgerStores
from .polling import TIMEOUT, eventually

# What a service runs with unless told otherwise (ServiceSettings' defaults): rejoins take seconds.
DEFAULT_GROUPS = {"kafka_session_timeout_ms": 10_000, "kafka_heartbeat_interval_ms": 3_000}


@pytest.fixture
def ledger(app_database: BoundDatabase) -> LedgerService:
    return LedgerService(LedgerStores(app_database))


@contextlib.contextmanager
def broker_on(port: int | None = None) -> Iterator[test_broker.Broker]:
    broker = test_broker.start(port)
    try:
        yield broker
    finally:
        broker.stop()


@contextlib.asynccontextmanager
async def running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[None]:
    task = asyncio.create_task(work, name=name)
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Watched:
    """A subscription that says whether its consumer last found nothing to fetch: stopped then, the
    consumer is waiting on the broker, not inside a handler's transaction."""

    def __init__(self, subscription: Subscription) -> None:
        self.subscription = subscription
        self.idle = False

    async def fetch(self, wait: float) -> Sequence[Received]:
        batch = await self.subscription.fetch(wait)
        self.idle = not batch
        return batch

    async def commit(self, processed: Sequence[Received]) -> None:
        await self.subscription.commit(processed)

    def lag(self) -> int | None:
        return self.subscription.lag()


class WatchedBroker:
    def __init__(self, broker: KafkaBroker) -> None:
        self.broker = broker
        self.watched: list[Watched] = []

    def publisher(self) -> contextlib.AbstractAsyncContextManager[Publisher]:
        return self.broker.publisher()

    @contextlib.asynccontextmanager
    async def subscription(self, topics: Sequence[str], group: str) -> AsyncIterator[Watched]:
        async with self.broker.subscription(topics, group) as subscription:
            self.watched.append(Watched(subscription))
            yield self.watched[-1]

    async def idle(self) -> bool:
        return bool(self.watched) and self.watched[-1].idle


async def record_and_relay(
    ledger: LedgerService, relay: Relay, broker: KafkaBroker, first: int, count: int
) -> None:
    for n in range(first, first + count):
        await ledger.record(f"e{n}", "acc", 1)
    async with broker.publisher() as publisher:
        assert await relay.drain(publisher) == count


@pytest.mark.parametrize(
    ("before", "after"),
    [(10, 3), (10, 25)],
    ids=["fewer-than-the-committed-offset", "more-than-the-committed-offset"],
)
@pytest.mark.parametrize("groups", [FAST_GROUPS, DEFAULT_GROUPS], ids=["fast-joins", "default-timeouts"])
async def test_a_consumer_handles_what_is_published_after_its_broker_lost_its_data(
    ledger: LedgerService,
    app_database: BoundDatabase,
    kafka_names: KafkaNames,
    before: int,
    after: int,
    groups: dict[str, int],
) -> None:
    relay = Relay(app_database)
    consumer = Consumer(LedgerStores(app_database), "balances").on(ENTRY_RECORDED, ledger.apply)
    with contextlib.ExitStack() as brokers:
        first = brokers.enter_context(broker_on())
        options = KafkaOptions(
            bootstrap_servers=first.bootstrap,
            topic_prefix=kafka_names.prefix,
            session_timeout_ms=groups["kafka_session_timeout_ms"],
            heartbeat_interval_ms=groups["kafka_heartbeat_interval_ms"],
        )
        kafka = KafkaBroker(options)
        broker = WatchedBroker(kafka)
        await record_and_relay(ledger, relay, kafka, 0, before)
        async with running(consumer.consume(broker), "consumer"):  # stopped before the second broker

            async def caught_up() -> bool:  # handled, and the batch's offsets committed
                return consumer.status.handled == before and consumer.status.lag == 0

            await eventually(caught_up, f"the first {before} events handled")
            first.stop()  # the broker goes, and with it the log and the group's offsets
            brokers.enter_context(broker_on(first.port))
            await record_and_relay(ledger, relay, kafka, before, after)

            async def all_handled_and_idle() -> bool:
                return consumer.status.handled >= before + after and await broker.idle()

            await eventually(all_handled_and_idle, f"the {after} events published after the loss")
    balance = await ledger.balance("acc")
    assert balance is not None
    assert (balance.entries, balance.total) == (before + after, before + after)
    assert (consumer.status.handled, consumer.status.dead_lettered) == (before + after, 0)


async def test_a_batch_fetched_before_a_rebalance_is_not_committed_after_it(
    kafka_broker: str, kafka_names: KafkaNames
) -> None:
    options = KafkaOptions(
        bootstrap_servers=kafka_broker,
        topic_prefix=kafka_names.prefix,
        session_timeout_ms=FAST_GROUPS["kafka_session_timeout_ms"],
        heartbeat_interval_ms=FAST_GROUPS["kafka_heartbeat_interval_ms"],
    )
    broker = KafkaBroker(options)
    async with broker.publisher() as publisher:
        await publisher.publish([Message("t", "k", str(n).encode()) for n in range(5)])
        await publisher.publish([Message("other", "k", b"x")])
    async with broker.subscription(["t"], "g") as member, asyncio.timeout(TIMEOUT):
        batch: list[Received] = []
        while len(batch) < 5:
            batch += await member.fetch(0.5)
        # a second member joins the group (on another topic, so `member` keeps every partition of "t")
        async with broker.subscription(["other"], "g") as newcomer:
            while not await newcomer.fetch(0.5):  # it has fetched: the group has rebalanced
                pass
            await member.commit(batch)
            [partition] = {TopicPartition(kafka_names.topic("t"), m.partition) for m in batch}
            # nothing committed: the new generation reads the batch again, and the inbox skips it
            assert await member.consumer.committed(partition) is None
