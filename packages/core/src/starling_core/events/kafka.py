"""The Kafka adapter of the events port, on aiokafka.

Delivery is at least once: the producer waits for every in-sync replica (`acks=all`) and is not
idempotent (the relay resends after a failure, and consumers' inboxes absorb the copies); consumers
commit offsets only after their handlers' transactions commit. Names get `STARLING_KAFKA_TOPIC_PREFIX`
in front, on the way out and the way in, so handlers and the outbox only ever see the logical topic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.errors import CommitFailedError, IllegalStateError, RebalanceInProgressError
from aiokafka.helpers import create_ssl_context
from aiokafka.partitioner import DefaultPartitioner

from starling_core.events.broker import Message, Received
from starling_core.settings import ServiceSettings

log = logging.getLogger("starling.events")


@dataclass(frozen=True)
class KafkaOptions:
    bootstrap_servers: str
    client_id: str = "starling"
    topic_prefix: str = ""
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    # How long a send may wait for the broker before the relay gives up on the batch and retries it.
    request_timeout_ms: int = 15_000
    max_batch: int = 500

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> KafkaOptions | None:
        """The options `settings` give, or None when no broker is configured."""
        if not settings.kafka_bootstrap_servers:
            return None
        password = settings.kafka_sasl_password
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            client_id=f"starling-{settings.service_name}",
            topic_prefix=settings.kafka_topic_prefix,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_username=settings.kafka_sasl_username,
            sasl_password=password.get_secret_value() if password is not None else None,
            session_timeout_ms=settings.kafka_session_timeout_ms,
            heartbeat_interval_ms=settings.kafka_heartbeat_interval_ms,
        )

    def client(self) -> dict[str, Any]:
        """What producers and consumers share: where the brokers are and how to talk to them."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            options["ssl_context"] = create_ssl_context()
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


class KafkaBroker:
    """Publishers and subscriptions on one Kafka cluster (`Broker` in broker.py)."""

    def __init__(self, options: KafkaOptions) -> None:
        self.options = options

    @asynccontextmanager
    async def publisher(self) -> AsyncIterator[KafkaPublisher]:
        producer = AIOKafkaProducer(
            **self.options.client(),
            acks="all",
            # The broker this is tested against speaks only InitProducerId v0; order per key holds
            # without idempotence because each partition gets one batch at a time (see publish).
            enable_idempotence=False,
            max_batch_size=256 * 1024,
        )
        try:
            await producer.start()  # fails when no broker answers; stopped either way
            yield KafkaPublisher(producer, self.options.topic_prefix)
        finally:
            await producer.stop()

    @asynccontextmanager
    async def subscription(self, topics: Sequence[str], group: str) -> AsyncIterator[KafkaSubscription]:
        prefix = self.options.topic_prefix
        consumer = AIOKafkaConsumer(
            **self.options.client(),
            group_id=prefix + group,
            enable_auto_commit=False,
            # a new group starts from the oldest message kept: nothing published before it is skipped
            auto_offset_reset="earliest",
            session_timeout_ms=self.options.session_timeout_ms,
            heartbeat_interval_ms=self.options.heartbeat_interval_ms,
            max_poll_records=self.options.max_batch,
        )
        subscription = KafkaSubscription(consumer, prefix)
        consumer.subscribe([prefix + topic for topic in topics], listener=subscription.rebalances)
        try:
            await consumer.start()
            yield subscription
        finally:
            await consumer.stop()


class KafkaPublisher:
    """Sends each partition's messages as batches, the next only once the broker has the one before.

    A partition never holds a later message of a key while an earlier one is still unacknowledged, so a
    send that fails for good leaves nothing after it: the relay sends from the oldest unsent again, and
    the first copy of every event reaches its partition in order (copies after it are the inbox's to
    skip). Partitions are chosen as Kafka's own clients choose them (murmur2 of the key).
    """

    def __init__(self, producer: AIOKafkaProducer, prefix: str = "") -> None:
        self.producer = producer
        self.prefix = prefix
        self._partitioner = DefaultPartitioner()

    async def publish(self, messages: Sequence[Message]) -> None:
        by_partition: dict[tuple[str, int], list[Message]] = {}
        for message in messages:
            topic = self.prefix + message.topic
            partitions = sorted(await self.producer.partitions_for(topic))
            partition = self._partitioner(message.key.encode(), partitions, partitions)
            by_partition.setdefault((topic, partition), []).append(message)
        await asyncio.gather(*(self._in_order(t, p, queued) for (t, p), queued in by_partition.items()))

    async def _in_order(self, topic: str, partition: int, messages: Sequence[Message]) -> None:
        batch = self.producer.create_batch()
        for message in messages:
            record = {"timestamp": None, "key": message.key.encode(), "value": message.value}
            if batch.append(**record, headers=list(message.headers)) is None:  # full: send it first
                await (await self.producer.send_batch(batch, topic, partition=partition))
                batch = self.producer.create_batch()
                if batch.append(**record, headers=list(message.headers)) is None:
                    raise ValueError(f"a message of {len(message.value)} bytes is over the batch size")
        await (await self.producer.send_batch(batch, topic, partition=partition))


class Rebalances(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka's ABC is untyped
    """Counts the group's rebalances: each revocation and each assignment is a new epoch."""

    def __init__(self) -> None:
        self.epoch = 0

    def on_partitions_revoked(self, revoked: object) -> None:
        self.epoch += 1

    def on_partitions_assigned(self, assigned: object) -> None:
        self.epoch += 1


class KafkaSubscription:
    """Commits only what was fetched in the group's current generation.

    A batch fetched before a rebalance is not committed after it, even when this member gets the same
    partitions back: its new generation starts from the offsets committed before, and the inbox skips
    what the batch had handled. Committing it would be harmless while the log stays the log, but a
    broker that lost its data hands out the old position's offsets from a new log: the batch was read
    from the middle of it, and its offset, committed in the new generation, would skip what comes
    before it for good.
    """

    def __init__(self, consumer: AIOKafkaConsumer, prefix: str = "") -> None:
        self.consumer = consumer
        self.prefix = prefix
        self.rebalances = Rebalances()
        self._lag: int | None = None
        self._fetched_in = 0

    async def fetch(self, wait: float) -> list[Received]:
        self._fetched_in = self.rebalances.epoch
        batches = await self.consumer.getmany(timeout_ms=int(wait * 1000))
        received = [self._received(record) for records in batches.values() for record in records]
        await self._measure_lag()
        return received

    async def commit(self, processed: Sequence[Received]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for message in processed:
            partition = TopicPartition(self.prefix + message.topic, message.partition)
            offsets[partition] = max(offsets.get(partition, 0), message.offset + 1)
        if not offsets:
            return
        if self.rebalances.epoch != self._fetched_in:
            log.warning("events: offsets not committed (the group rebalanced since the fetch); read again")
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError, RebalanceInProgressError) as exc:
            # The partitions moved to another member meanwhile: it gets these messages again, and the
            # inbox skips what was handled here.
            log.warning("events: offsets not committed (%s); the new owner sees them again", exc)

    def lag(self) -> int | None:
        return self._lag

    def _received(self, record: ConsumerRecord[bytes, bytes]) -> Received:
        topic = record.topic.removeprefix(self.prefix)
        return Received(
            topic,
            (record.key or b"").decode(errors="replace"),
            record.value or b"",
            tuple((name, value or b"") for name, value in record.headers),
            partition=record.partition,
            offset=record.offset,
        )

    async def _measure_lag(self) -> None:
        total = 0
        for partition in self.consumer.assignment():
            end = self.consumer.highwater(partition)
            if end is None:
                return
            with contextlib.suppress(IllegalStateError):  # unassigned meanwhile by a rebalance
                total += max(end - await self.consumer.position(partition), 0)
        self._lag = total
