"""`Events`: what a service runs for its events, built once in its `create_app`.

Core's `create_app(settings, events=events)` runs the relay in the app's lifespan (when a broker is
configured) and adds the outbox and the consumers to `/health`; the service's own lifespan starts its
consumers with `events.consuming(...)`. With no broker configured nothing is started: the service
serves, its events wait in the outbox, and `/health` says how many.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from starling_core.db import Database
from starling_core.events.broker import Broker
from starling_core.events.consumer import Consumer
from starling_core.events.outbox import Outbox
from starling_core.events.relay import Relay
from starling_core.settings import ServiceSettings


class Events:
    def __init__(
        self, settings: ServiceSettings, *, broker: Broker | None = None, poll_interval: float = 1.0
    ) -> None:
        self.broker: Broker | None = broker if broker is not None else kafka_broker(settings)
        self.poll_interval = poll_interval
        self.relay: Relay | None = None
        self.consumers: list[Consumer[Any]] = []

    @asynccontextmanager
    async def running(self, database: Database) -> AsyncIterator[None]:
        """The relay, delivering `database`'s outbox for as long as the block (create_app's hook)."""
        self.relay = Relay(database, poll_interval=self.poll_interval)
        if self.broker is None:
            yield
            return
        task = asyncio.create_task(self.relay.run(self.broker), name="starling-events-relay")
        try:
            yield
        finally:
            await _stop(task)

    @asynccontextmanager
    async def consuming(self, *consumers: Consumer[Any]) -> AsyncIterator[None]:
        """Run `consumers` for as long as the block (a service's lifespan), each in its own task."""
        self.consumers.extend(consumers)
        tasks = [
            asyncio.create_task(consumer.consume(self.broker), name=f"starling-events-{consumer.group}")
            for consumer in consumers
            if self.broker is not None
        ]
        try:
            yield
        finally:
            for task in tasks:
                await _stop(task)
            for consumer in consumers:
                consumer.status.state = "stopped"

    async def health(self, database: Database) -> dict[str, Any]:
        """The outbox's depth, the relay's state and each consumer's lag, for `/health`."""
        async with database.session() as session:
            pending, oldest = await Outbox(session).depth()
        age = (datetime.now(UTC) - oldest).total_seconds() if oldest is not None else 0.0
        relay: dict[str, Any] = {"state": "unconfigured"}
        if self.broker is not None and self.relay is not None:
            relay = {
                k: v.isoformat() if isinstance(v, datetime) else v
                for k, v in asdict(self.relay.status).items()
            }
        return {
            "broker": "configured" if self.broker is not None else "unconfigured",
            "outbox": {"pending": pending, "oldest_age_seconds": round(age, 3)},
            "relay": relay,
            "consumers": {consumer.group: asdict(consumer.status) for consumer in self.consumers},
        }


def kafka_broker(settings: ServiceSettings) -> Broker | None:
    """The Kafka broker `settings` configure (aiokafka is imported only then), or None."""
    if not settings.kafka_bootstrap_servers:
        return None
    from starling_core.events.kafka import KafkaBroker, KafkaOptions

    options = KafkaOptions.from_settings(settings)
    return KafkaBroker(options) if options is not None else None


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
