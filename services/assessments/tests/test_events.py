"""Over HTTP, a submission writes `assessment.completed` to the service's outbox once, in its own
transaction, and core's relay delivers it as the spec's message: topic `assessments.assessments`, key the
assessment's id, the JSON envelope as value (here to the kit's `FakePublisher` instead of Kafka)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from starling_assessments.app import create_app
from starling_assessments.models import Question
from starling_assessments.settings import AssessmentsSettings
from starling_core.events import Events, Message, Publisher, Relay, Subscription
from starling_core.events.topics import ASSESSMENT_COMPLETED
from starling_testkit import AppFactory, BoundDatabase, FakePublisher
from starling_testkit.events import PublishedEvents

Bank = dict[str, list[Question]]


async def submitted(auth_client: httpx.AsyncClient, bank: Bank) -> dict[str, str]:
    created = (
        await auth_client.post("/api/v1/assessments", json={"title": "Review", "skill_areas": ["sql"]})
    ).json()
    for question, value in zip(bank["sql"], (4, 1), strict=True):
        await auth_client.put(
            f"/api/v1/assessments/{created['id']}/answers/{question.id}", json={"value": value}
        )
    response = await auth_client.post(f"/api/v1/assessments/{created['id']}/submit")
    assert response.status_code == 200
    assessment: dict[str, str] = response.json()
    return assessment


async def test_a_submission_over_http_writes_one_completed_event(
    auth_client: httpx.AsyncClient, bank: Bank, published_events: PublishedEvents
) -> None:
    assessment = await submitted(auth_client, bank)

    again = await auth_client.post(f"/api/v1/assessments/{assessment['id']}/submit")

    assert again.status_code == 409
    (event,) = await published_events.of(ASSESSMENT_COMPLETED)
    assert event.key == assessment["id"]
    # with no broker configured it waits in the outbox, and /health says so
    health = (await auth_client.get("/health")).json()
    assert health["details"]["events"]["outbox"]["pending"] == 1
    assert event.payload.model_dump(mode="json") == {
        "assessment_id": assessment["id"],
        "owner": "test-user-001",
        "overall": 2.5,
        "submitted_at": assessment["submitted_at"],
    }


async def test_the_relay_delivers_it_as_the_specs_message(
    auth_client: httpx.AsyncClient, bank: Bank, app_database: BoundDatabase, fake_publisher: FakePublisher
) -> None:
    assessment = await submitted(auth_client, bank)

    assert await Relay(app_database).deliver_once(fake_publisher) == 1

    (message,) = fake_publisher.published
    assert (message.topic, message.key) == ("assessments.assessments", assessment["id"])
    (envelope,) = fake_publisher.events("assessments.assessments")
    assert set(envelope.model_dump()) == {"id", "type", "key", "occurred_at", "version", "payload"}
    assert (envelope.type, envelope.key, envelope.payload["overall"]) == (
        "assessment.completed",
        assessment["id"],
        2.5,
    )
    assert await Relay(app_database).deliver_once(fake_publisher) == 0  # sent once, marked sent


class SignallingPublisher(FakePublisher):
    """The kit's `FakePublisher`, which also says when something was published."""

    def __init__(self) -> None:
        super().__init__()
        self.sent = asyncio.Event()

    async def publish(self, messages: Sequence[Message]) -> None:
        await super().publish(messages)
        self.sent.set()


class PublishingBroker:
    """A broker whose publisher is a `FakePublisher`: what the app's own relay sends lands there."""

    def __init__(self, publisher: FakePublisher) -> None:
        self.fake = publisher

    @asynccontextmanager
    async def publisher(self) -> AsyncIterator[Publisher]:
        yield self.fake

    def subscription(self, topics: Sequence[str], group: str) -> AbstractAsyncContextManager[Subscription]:
        raise NotImplementedError("this stand-in broker only takes what the relay publishes")


class TestTheAppsOwnRelay:
    @pytest.fixture
    def sink(self) -> SignallingPublisher:
        return SignallingPublisher()

    @pytest.fixture
    def app_factory(self, sink: SignallingPublisher, app_settings: AssessmentsSettings) -> AppFactory:
        events = Events(app_settings, broker=PublishingBroker(sink), poll_interval=0.02)
        return functools.partial(create_app, events=events)

    async def test_sends_the_event_while_the_app_runs(
        # `bank` first: it is written through the kit's own session before the app (and its relay) starts
        self,
        bank: Bank,
        auth_client: httpx.AsyncClient,
        sink: SignallingPublisher,
    ) -> None:
        assessment = await submitted(auth_client, bank)

        async with asyncio.timeout(5):
            await sink.sent.wait()

        (envelope,) = sink.events("assessments.assessments")
        assert (envelope.type, envelope.key) == ("assessment.completed", assessment["id"])
