"""Consumers: a group's handlers, each event taking effect once however often it arrives.

For each event the consumer claims its id in the inbox and runs the handler on the service's repositories
in the same write transaction: both commit or neither does, so a redelivered event finds its inbox row
and is skipped. A fetched batch is handled in one transaction, in order, its events claimed by one inbox
statement (one commit and one claim, not one per event); if any of its handlers raises, the transaction
is rolled back and the batch handled again one event per transaction, with the retries below. Offsets
are committed only after the handlers' transactions: a consumer that dies mid-batch gets the batch
again, and the inbox absorbs what it had already handled.

A handler that raises is retried with backoff; after the last retry the message goes, unchanged and
with headers saying why, to `<topic>.dlq`, and the partition moves on. A message that is not an
envelope, or whose payload does not validate, goes there at once: retrying cannot fix it. An
unreachable database is not the event's fault: it is waited out, never dead-lettered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from starling_core.db import DatabaseUnavailable
from starling_core.events.broker import Broker, Message, Publisher, Received, Subscription
from starling_core.events.envelope import Event, EventType, RawEvent
from starling_core.events.inbox import Inbox
from starling_core.events.topics import dead_letter_topic
from starling_core.repository import Stores

log = logging.getLogger("starling.events")

P = TypeVar("P")
R = TypeVar("R")
Sleep = Callable[[float], Awaitable[None]]


class Outcome(StrEnum):
    HANDLED = "handled"
    DUPLICATE = "duplicate"  # this group handled the event already
    IGNORED = "ignored"  # no handler for its type here
    DEAD_LETTERED = "dead_lettered"


class EventFailed(Exception):
    """An event that cannot be handled, delivered where there is no dead-letter topic to put it on."""


@dataclass
class ConsumerStatus:
    state: str = "stopped"  # running, reconnecting
    handled: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    lag: int | None = None
    # the last failure's exception type: `/health` shows it to anyone, and an exception's text can hold
    # payload values or SQL, so the text goes only to the log (and a dead letter's `error` header)
    last_error: str | None = None


@dataclass(frozen=True)
class _Route(Generic[P, R]):
    kind: EventType[P]
    handler: Callable[[Event[P], R], Awaitable[None]]


class Consumer(Generic[R]):
    """`Consumer(stores, "reporting").on(RUN_FINISHED, service.record_run)`: handlers take the event
    and the service's repositories (`stores.on(session)`) in the transaction that also holds the inbox."""

    def __init__(
        self,
        stores: Stores[R],
        group: str,
        *,
        retry_delays: Sequence[float] = (0.1, 1.0, 5.0),
        max_backoff: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        on_arrival: Callable[[Event[Any]], None] | None = None,
    ) -> None:
        self.stores = stores
        self.group = group
        # Told of each parsed event before its transaction is opened, which may wait for the write turn
        # (on SQLite, behind every write of the process): for an in-memory effect that must not wait
        # and may happen twice (a batch that fails is handled again one event at a time), such as
        # refusing a revoked token. The handler, in the transaction, is still what takes effect for good.
        self.on_arrival = on_arrival
        self.retry_delays = tuple(retry_delays)
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.status = ConsumerStatus()
        self._routes: dict[tuple[str, str], _Route[Any, R]] = {}

    def on(self, kind: EventType[P], handler: Callable[[Event[P], R], Awaitable[None]]) -> Consumer[R]:
        self._routes[(kind.topic, kind.name)] = _Route(kind, handler)
        return self

    @property
    def topics(self) -> list[str]:
        return sorted({topic for topic, _ in self._routes})

    async def deliver(self, event: Event[Any], *, topic: str | None = None) -> Outcome:
        """Hand `event` to this consumer in process, as if it had come from the broker (for tests and
        replays): the same inbox, transaction and retries; a poison event raises `EventFailed`."""
        if topic is None:
            topic = next((t for (t, name) in self._routes if name == event.type), "")
        message = Received(topic, event.key, event.to_json(), offset=-1)
        return await self.handle(message)

    async def handle(self, message: Received, dead_letters: Publisher | None = None) -> Outcome:
        """Handle one message once, retrying a failing handler; dead-letter it if it keeps failing."""
        try:
            raw = RawEvent.model_validate_json(message.value)
        except ValidationError as exc:
            return await self._dead_letter(message, dead_letters, f"not an event envelope: {exc}", 0)
        route = self._routes.get((message.topic, raw.type))
        if route is None:
            return Outcome.IGNORED
        try:
            event = route.kind.parse(message.value)
        except ValidationError as exc:
            return await self._dead_letter(message, dead_letters, f"invalid {raw.type} payload: {exc}", 0)
        if self.on_arrival is not None:
            self.on_arrival(event)
        attempt, backoff = 0, self.retry_delays[0] if self.retry_delays else 0.1
        while True:
            try:
                return await self._handle_once(message.topic, event, route)
            except DatabaseUnavailable as exc:
                self.status.last_error = type(exc).__name__
                await self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
            except Exception as exc:
                self.status.last_error = type(exc).__name__
                if attempt >= len(self.retry_delays):
                    log.warning("events: %s %s failed %d times: %s", self.group, event.id, attempt + 1, exc)
                    reason = f"{type(exc).__name__}: {exc}"
                    return await self._dead_letter(message, dead_letters, reason, attempt + 1)
                await self.sleep(self.retry_delays[attempt])
                attempt += 1

    async def handle_batch(self, batch: Sequence[Received], dead_letters: Publisher | None = None) -> None:
        """Handle `batch` in one transaction if every handler succeeds; otherwise one event at a time
        (`handle`: retries, dead letters). Messages that need no handler or cannot be parsed take the
        one-at-a-time path at once: they never touch the database."""
        routed: list[tuple[Received, Event[Any], _Route[Any, R]]] = []
        for message in batch:
            found = self._routed(message)
            if found is None:
                await self.handle(message, dead_letters)
            else:
                routed.append((message, *found))
                if self.on_arrival is not None:
                    self.on_arrival(found[0])
        if routed and not await self._handle_together(routed):
            for message, _, _ in routed:
                await self.handle(message, dead_letters)

    async def run(self, subscription: Subscription, dead_letters: Publisher) -> None:
        """Handle what `subscription` hands out, committing each batch once it is handled."""
        self.status.state = "running"
        while True:
            batch = await subscription.fetch(1.0)
            self.status.lag = subscription.lag()
            if not batch:
                continue
            await self.handle_batch(batch, dead_letters)
            await subscription.commit(batch)
            self.status.lag = subscription.lag()

    async def consume(self, broker: Broker) -> None:
        """`run` for as long as the task runs, reconnecting with backoff while the broker is away."""
        backoff = self.retry_delays[0] if self.retry_delays else 0.1
        while True:
            try:
                async with (
                    broker.subscription(self.topics, self.group) as subscription,
                    broker.publisher() as dead_letters,
                ):
                    backoff = self.retry_delays[0] if self.retry_delays else 0.1
                    await self.run(subscription, dead_letters)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a consumer outlives any failure: the broker keeps its place
                self.status.state = "reconnecting"
                self.status.last_error = type(exc).__name__
                log.warning(
                    "events: consumer %s paused %.1f s: %s: %s", self.group, backoff, type(exc).__name__, exc
                )
                await self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    def _routed(self, message: Received) -> tuple[Event[Any], _Route[Any, R]] | None:
        """The event and its route, or None when `handle` must decide (ignored, or not parseable)."""
        try:
            route = self._routes.get((message.topic, RawEvent.model_validate_json(message.value).type))
            return None if route is None else (route.kind.parse(message.value), route)
        except ValidationError:
            return None

    async def _handle_together(self, routed: Sequence[tuple[Received, Event[Any], _Route[Any, R]]]) -> bool:
        """Every event in one transaction; False (and nothing written) if any handler raised."""
        try:
            async with self.stores.database.transaction() as session:
                repositories = self.stores.on(session)
                events = [(event.id, message.topic) for message, event, _ in routed]
                claimed = await Inbox(session).claim_many(self.group, events)
                handled = 0
                for _, event, route in routed:
                    if event.id in claimed:
                        claimed.discard(event.id)  # a second copy in the same batch is a duplicate
                        await route.handler(event, repositories)
                        handled += 1
        except Exception as exc:  # handled again one at a time, where retries and dead letters apply
            log.info("events: %s handles a batch of %d one by one: %r", self.group, len(routed), exc)
            return False
        # counted once the transaction has committed, so a count that is seen is a count that holds
        self.status.handled += handled
        self.status.duplicates += len(routed) - handled
        return True

    async def _handle_once(self, topic: str, event: Event[Any], route: _Route[Any, R]) -> Outcome:
        async with self.stores.database.transaction() as session:
            first = await Inbox(session).claim(self.group, event.id, topic)
            if first:
                await route.handler(event, self.stores.on(session))
        # counted once the transaction has committed, so a count that is seen is a count that holds
        if not first:
            self.status.duplicates += 1
            return Outcome.DUPLICATE
        self.status.handled += 1
        return Outcome.HANDLED

    async def _dead_letter(
        self, message: Received, dead_letters: Publisher | None, reason: str, attempts: int
    ) -> Outcome:
        if dead_letters is None:
            raise EventFailed(f"{message.topic}: {reason}")
        headers = (
            *message.headers,
            ("error", reason[:1000].encode()),
            ("original-topic", message.topic.encode()),
            ("original-partition", str(message.partition).encode()),
            ("original-offset", str(message.offset).encode()),
            ("consumer", self.group.encode()),
            ("attempts", str(attempts).encode()),
        )
        await dead_letters.publish(
            [Message(dead_letter_topic(message.topic), message.key, message.value, headers)]
        )
        self.status.dead_lettered += 1
        return Outcome.DEAD_LETTERED
