"""Fixtures for events: a real Kafka-protocol broker per worker, names unique to each test, settings
that point an app at both, and what the app under test published through its outbox.

Registered by plugin.py; the broker itself is started by `starling_servers.kafka`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from starling_servers import kafka

if TYPE_CHECKING:
    # Imported where used: the plugin imports this module at every run's start-up, and the events port
    # (pydantic models, the consumer) took ~0.6 s of it in a service's environment.
    from starling_core.db import Database
    from starling_core.events import Event, EventType, RawEvent
    from starling_testkit.binding import BoundDatabase

P = TypeVar("P")

BOOTSTRAP_ENV = "STARLING_TEST_KAFKA_BOOTSTRAP_SERVERS"
# A consumer joins its group in session_timeout/2 on the kit's broker: fast joins for tests.
FAST_GROUPS = {"kafka_session_timeout_ms": 1000, "kafka_heartbeat_interval_ms": 300}
# Apache Kafka refuses sessions under group.min.session.timeout.ms (6 s by default).
KAFKA_GROUPS = {"kafka_session_timeout_ms": 6000, "kafka_heartbeat_interval_ms": 1000}


class KafkaNames:
    """Topic and consumer-group names no other test uses: each is `<prefix><name>`."""

    def __init__(self) -> None:
        self.prefix = f"t{uuid.uuid4().hex[:10]}."

    def topic(self, name: str = "topic") -> str:
        return self.prefix + name

    def group(self, name: str = "group") -> str:
        return self.prefix + name


class PublishedEvents:
    """What the app under test published through its outbox, in the test's transaction."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def all(self, topic: str | None = None) -> list[RawEvent]:
        from starling_core.events import Outbox, RawEvent

        async with self.database.session() as session:
            rows = await Outbox(session).written(topic)
        return [RawEvent.model_validate_json(row.envelope) for row in rows]

    async def of(self, kind: EventType[P]) -> list[Event[P]]:
        """The `kind` events, their payloads validated as `kind`'s model."""
        from starling_core.events import Outbox

        async with self.database.session() as session:
            rows = await Outbox(session).written(kind.topic)
        return [kind.parse(row.envelope) for row in rows if row.type == kind.name]


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[str]:
    """`host:port` of a Kafka-protocol broker: this worker's own, or the one
    `STARLING_TEST_KAFKA_BOOTSTRAP_SERVERS` names. One that cannot be had fails the test, saying why."""
    given = os.environ.get(BOOTSTRAP_ENV)
    if given:
        first = given.split(",")[0].strip()
        try:
            kafka.cluster_id(first)
        except (OSError, ValueError) as exc:
            pytest.fail(
                f"starling: no Kafka broker answers at {first} ({BOOTSTRAP_ENV}): {exc}", pytrace=False
            )
        yield given
        return
    try:
        broker = kafka.start()
    except kafka.BrokerUnavailable as exc:
        pytest.fail(f"{exc} (or name a broker in {BOOTSTRAP_ENV})", pytrace=False)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()


@pytest.fixture
def kafka_names() -> KafkaNames:
    """Topic and group names no other test uses: `.topic("t")`, `.group("g")`."""
    return KafkaNames()


@pytest.fixture
def kafka_settings(kafka_broker: str, kafka_names: KafkaNames) -> dict[str, Any]:
    """Settings fields that put an app on the broker, under this test's own topic and group names:
    `app_settings.model_copy(update=kafka_settings)`."""
    groups = KAFKA_GROUPS if os.environ.get(BOOTSTRAP_ENV) else FAST_GROUPS
    return {"kafka_bootstrap_servers": kafka_broker, "kafka_topic_prefix": kafka_names.prefix, **groups}


@pytest.fixture
def published_events(app_database: BoundDatabase) -> PublishedEvents:
    """`await published_events.all()` / `.of(RUN_FINISHED)`: the events the app's writes added to its
    outbox (those of a rolled-back write are not there), whether or not a relay has sent them."""
    return PublishedEvents(app_database)
