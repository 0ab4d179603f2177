"""Figure 5: an event's way from a service's commit to another service's handler, beside raw aiokafka.

Everything runs in one process, as one service that publishes and consumes would, on a broker from the
kit's pinned wheel started for the part:

- latency: one `order.placed` at a time, from the commit of the transaction that writes it to the
  outbox to its handler running (relay woken by the commit, `acks=all`, the consumer's fetch, the
  inbox claim); beside it, one message at a time from a raw `AIOKafkaProducer(acks="all")`'s send to
  a raw `AIOKafkaConsumer` handing it over;
- throughput: `count` events written to the outbox in transactions of 100 while the relay sends,
  from the first write to the last handler run, each fetched batch claimed in the inbox by one statement
  and handled in one transaction; beside it, the same values and keys from a raw
  producer to a raw consumer that commits each batch, first send to last receipt.

Rounds alternate the two, and the figures are medians: the machine is shared, so only the ratios
between figures of one run mean anything. Every event must reach its handler exactly once.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core import schema
from starling_core.db import Database
from starling_core.events import Consumer, Event, Outbox, Relay
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_core.events.topics import ORDER_PLACED, OrderLine, OrderPlaced
from starling_core.repository import Stores
from starling_devtools.bench.results import LABELS, Figure, median
from starling_devtools.harness import percentile
from starling_servers import kafka

T = TypeVar("T")

PART = "events"
# Joins on the test broker wait session_timeout/2: the kit's fast settings, for ours and the raw pair.
SESSION_TIMEOUT_MS, HEARTBEAT_INTERVAL_MS = 1000, 300
WAIT = 60.0  # seconds any one phase may take before the part fails, saying which


@dataclass
class Measured:
    database: str
    count: int
    rounds: int
    latency_ms: list[float] = field(default_factory=list)
    raw_latency_ms: list[float] = field(default_factory=list)
    per_second: list[float] = field(default_factory=list)  # one figure a round
    raw_per_second: list[float] = field(default_factory=list)
    expected: int = 0  # events written to the outbox in all
    handled: dict[str, int] = field(default_factory=dict)  # handler runs per event id
    duplicates: int = 0  # copies the inbox skipped
    raw_received: int = 0
    raw_expected: int = 0

    @property
    def delivered_once(self) -> bool:
        return len(self.handled) == self.expected and all(runs == 1 for runs in self.handled.values())


def order(n: int) -> OrderPlaced:
    line = OrderLine(product_id=f"p{n % 50}", title="Bench widget", quantity=1, unit_price=Decimal("9.90"))
    return OrderPlaced(order_id=f"o{n}", created_at=datetime.now(UTC), items=[line])


def measure(
    database: str,
    url: str,
    *,
    count: int = 5000,
    samples: int = 200,
    rounds: int = 3,
    log: Callable[[str], None] = lambda line: None,
) -> Measured:
    """The part on `database` (at `url`, empty): `rounds` of each pipeline, a broker of its own."""
    with kafka.start() as broker:
        return asyncio.run(_measure(database, url, broker.bootstrap, count, samples, rounds, log))


async def _measure(
    database: str, url: str, bootstrap: str, count: int, samples: int, rounds: int, log: Callable[[str], None]
) -> Measured:
    measured = Measured(database, count, rounds)
    db = Database.from_url(url)
    try:
        async with db.engine.begin() as connection:
            await connection.run_sync(schema.metadata.create_all)
        pipeline = Pipeline(db, bootstrap, measured)
        raw = RawPair(bootstrap, measured)
        async with pipeline.consuming(), raw.consuming():
            await _within(pipeline.one(), "the starling consumer joining its group")
            await _within(raw.one(), "the raw consumer joining its group")
            for _ in range(samples):
                measured.latency_ms.append(await _within(pipeline.one(), "one event, commit to handler"))
                measured.raw_latency_ms.append(await _within(raw.one(), "one raw message"))
            for number in range(rounds):
                measured.per_second.append(await _within(pipeline.many(count), f"{count} events"))
                measured.raw_per_second.append(await _within(raw.many(count), f"{count} raw messages"))
                log(f"bench: events {database} round {number + 1}: {measured.per_second[-1]:,.0f}/s, "
                    f"raw {measured.raw_per_second[-1]:,.0f}/s")  # fmt: skip
        measured.duplicates = pipeline.consumer.status.duplicates
    finally:
        await db.dispose()
    return measured


async def _within(work: Coroutine[Any, Any, T], what: str) -> T:
    try:
        async with asyncio.timeout(WAIT):
            return await work
    except TimeoutError:
        raise RuntimeError(f"events bench: not within {WAIT:.0f} s: {what}") from None


@contextlib.asynccontextmanager
async def _running(work: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(work, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class Timed(abc.ABC):
    """A way from a sender to a handler, timed: when each message (by its id or key) first reached its
    consumer, awaited without polling; one message's latency and many messages' rate from that."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._changed = asyncio.Event()

    @abc.abstractmethod
    async def send(self, count: int) -> tuple[list[str], float]:
        """Send `count` messages: their ids or keys, and when the first set off."""

    def mark(self, key: str, now: float) -> None:
        self.at.setdefault(key, now)
        self._changed.set()

    async def last(self, keys: list[str]) -> float:
        """When the last of `keys` arrived."""
        while not all(key in self.at for key in keys):
            self._changed.clear()
            await self._changed.wait()
        return max(self.at[key] for key in keys)

    async def one(self) -> float:
        """Milliseconds from one message's setting off to its handler."""
        keys, sent = await self.send(1)
        return 1000 * (await self.last(keys) - sent)

    async def many(self, count: int) -> float:
        """Messages a second, from the first one's sending to the last one's handler."""
        started = time.perf_counter()
        keys, _ = await self.send(count)
        return count / (await self.last(keys) - started)


class Pipeline(Timed):
    """Starling's way: outbox, relay, broker, consumer, inbox, handler."""

    def __init__(self, database: Database, bootstrap: str, measured: Measured) -> None:
        super().__init__()
        self.database = database
        self.measured = measured
        options = KafkaOptions(
            bootstrap,
            client_id="bench-events",
            topic_prefix=f"b{uuid.uuid4().hex[:8]}.",
            session_timeout_ms=SESSION_TIMEOUT_MS,
            heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )
        self.broker = KafkaBroker(options)
        self.consumer = Consumer(Stores(database, _session), "bench").on(ORDER_PLACED, self._handle)
        self.relay = Relay(database, poll_interval=0.5)
        self._written = 0

    async def _handle(self, event: Event[OrderPlaced], session: AsyncSession) -> None:
        self.measured.handled[event.id] = self.measured.handled.get(event.id, 0) + 1
        self.mark(event.id, time.perf_counter())

    @contextlib.asynccontextmanager
    async def consuming(self) -> AsyncIterator[None]:
        async with (
            _running(self.consumer.consume(self.broker), "bench-consumer"),
            _running(self.relay.run(self.broker), "bench-relay"),  # woken by each commit
        ):
            yield

    async def send(self, count: int) -> tuple[list[str], float]:
        """Written to the outbox in transactions of 100, the relay sending while they are written, as in
        a service; one event sets off at its commit."""
        ids: list[str] = []
        for start in range(0, count, 100):
            async with self.database.transaction() as session:
                outbox = Outbox(session)
                for _ in range(start, min(start + 100, count)):
                    self._written += 1
                    event = await outbox.add(
                        ORDER_PLACED, key=f"o{self._written}", payload=order(self._written)
                    )
                    ids.append(event.id)
        self.measured.expected += len(ids)
        return ids, time.perf_counter()


def _session(session: AsyncSession) -> AsyncSession:
    return session


class RawPair(Timed):
    """The reference: a raw aiokafka producer (acks=all) and a raw consumer committing each batch."""

    def __init__(self, bootstrap: str, measured: Measured) -> None:
        super().__init__()
        self.bootstrap = bootstrap
        self.measured = measured
        self.topic = f"raw{uuid.uuid4().hex[:8]}.orders"
        self._stopping = asyncio.Event()
        self._sent = 0

    @contextlib.asynccontextmanager
    async def consuming(self) -> AsyncIterator[None]:
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=False
        )
        consumer = AIOKafkaConsumer(
            self.topic, bootstrap_servers=self.bootstrap, group_id=f"{self.topic}.group",
            enable_auto_commit=False, auto_offset_reset="earliest", max_poll_records=100,
            session_timeout_ms=SESSION_TIMEOUT_MS, heartbeat_interval_ms=HEARTBEAT_INTERVAL_MS,
        )  # fmt: skip
        await self.producer.start()
        try:
            await consumer.start()
            task = asyncio.create_task(self._consume(consumer), name="bench-raw-consumer")
            try:
                yield
            finally:
                self._stopping.set()  # ends between batches: no commit is cut off half-way
                await task
                await consumer.stop()
        finally:
            await self.producer.stop()

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    self.measured.raw_received += 1
                    self.mark((record.key or b"").decode(), now)
            if batches:  # after the handing over, as Starling's consumer commits after its handlers
                await consumer.commit()

    async def send(self, count: int) -> tuple[list[str], float]:
        started = time.perf_counter()
        keys: list[str] = []
        sends = []
        for _ in range(count):
            self._sent += 1
            key = f"o{self._sent}"
            value = ORDER_PLACED.new(key, order(self._sent)).to_json()
            sends.append(await self.producer.send(self.topic, value, key=key.encode()))
            keys.append(key)
        await asyncio.gather(*sends)
        self.measured.raw_expected += count
        return keys, started


def measurements(by_database: dict[str, Measured]) -> dict[str, Any]:
    """Each database's measurements, the per-event handler runs counted rather than listed."""
    found: dict[str, Any] = {}
    for database, measured in by_database.items():
        found[database] = {name: value for name, value in asdict(measured).items() if name != "handled"}
        found[database] |= {
            "distinct_handled": len(measured.handled),
            "delivered_once": measured.delivered_once,
        }
    return found


RAW_LATENCY = "raw aiokafka send (acks=all) to consumer, p50"
RAW_RATE = "raw aiokafka producer (acks=all) to consumer committing each batch"


def figures(by_database: dict[str, Measured]) -> list[Figure]:
    """Our path's medians against raw aiokafka's, measured in the same rounds."""
    found: list[Figure] = []
    for database, measured in by_database.items():
        label = LABELS[database]
        once = "every event handled once" if measured.delivered_once else (
            f"NOT once: {len(measured.handled)} of {measured.expected} events reached a handler"
        )  # fmt: skip
        p99, raw_p99 = percentile(measured.latency_ms, 0.99), percentile(measured.raw_latency_ms, 0.99)
        latency = f"event latency p50, commit to consumer's handler (outbox, relay, broker, inbox), {label}"
        rounds = f"median of {measured.rounds} alternating rounds; {once}, {measured.duplicates} copies"
        found += [
            Figure(PART, latency, median(measured.latency_ms), "ms", RAW_LATENCY,
                   median(measured.raw_latency_ms), detail=f"p99 {p99:.2f} ms against {raw_p99:.2f} ms, "
                   f"{len(measured.latency_ms)} events one at a time"),
            Figure(PART, f"event throughput, {measured.count:,} events outbox to handler, {label}",
                   median(measured.per_second), "events/s", RAW_RATE, median(measured.raw_per_second),
                   detail=f"{rounds} skipped by the inbox"),
        ]  # fmt: skip
    return found
