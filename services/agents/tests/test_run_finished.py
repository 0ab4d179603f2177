"""`run.finished`: written to the outbox in the transaction that ends a run (completed, failed or
cancelled), once per run, and relayed to the real broker (the kit's `kafka_broker`) as the spec's message
on `agents.runs`, keyed by the run's id."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import httpx
import pytest

from starling_agents.app import create_app
from starling_agents.settings import AgentsSettings
from starling_core.app import ServiceApp
from starling_core.db import Database
from starling_core.events import Events, RawEvent, Received
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_core.events.topics import AGENTS_RUNS, RUN_FINISHED, RunFinished
from starling_core.settings import ServiceSettings
from starling_testkit import AppFactory, BoundDatabase
from starling_testkit.events import PublishedEvents
from starling_testkit.tokens import DEFAULT_SUB

from .helpers import SAMPLE_TEXT, build_app, client_for, started, wait_until_finished

TIMEOUT = 20.0  # seconds the relay and the broker may take on a loaded 2-core machine


async def finished_events(published: PublishedEvents, run_id: str) -> list[dict[str, Any]]:
    return [
        event.payload.model_dump(mode="json")
        for event in await published.of(RUN_FINISHED)
        if event.key == run_id
    ]


async def test_a_run_that_ends_now_publishes_one_run_finished(
    auth_client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT}
    run = (await auth_client.post("/api/v1/agents/run", json=body)).json()

    (event,) = [event for event in await published_events.of(RUN_FINISHED) if event.key == run["run_id"]]
    finished_at = datetime.fromisoformat(run["finished_at"])
    assert event.payload == RunFinished(
        run_id=run["run_id"],
        agent_id="summarizer",
        owner=DEFAULT_SUB,
        status="completed",
        token_usage=run["token_usage"],
        finished_at=finished_at,
    )
    assert event.occurred_at == finished_at


async def test_a_background_run_publishes_it_when_a_worker_finishes_it(
    started_app: Any, auth_client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    body = {"agent_id": "classifier", "input_text": "a great product", "background": True}
    queued = (await auth_client.post("/api/v1/agents/run", json=body)).json()
    assert await finished_events(published_events, queued["run_id"]) == []  # queued: not finished

    run = await wait_until_finished(auth_client, started_app, queued["run_id"])

    (payload,) = await finished_events(published_events, run["run_id"])
    assert (payload["status"], payload["agent_id"], payload["token_usage"]) == (
        "completed",
        "classifier",
        run["token_usage"],
    )


async def test_a_cancel_publishes_it_with_status_cancelled_and_a_refused_cancel_nothing(
    app_settings: ServiceSettings,
    app_database: BoundDatabase,
    token_factory: Any,
    published_events: PublishedEvents,
) -> None:
    app = build_app(app_settings, app_database, workers=0)  # the run stays queued until cancelled
    async with started(app) as served, client_for(served, token_factory()) as client:
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        run_id = (await client.post("/api/v1/agents/run", json=body)).json()["run_id"]
        assert (await client.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 200
        assert (await client.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 409

    (payload,) = await finished_events(published_events, run_id)
    assert (payload["status"], payload["token_usage"], payload["owner"]) == ("cancelled", 0, DEFAULT_SUB)
    assert payload["finished_at"] is not None


async def test_a_failed_run_publishes_it_with_status_failed(
    app_settings: ServiceSettings,
    app_database: BoundDatabase,
    admin_client: httpx.AsyncClient,
    token_factory: Any,
    published_events: PublishedEvents,
) -> None:
    # an llm agent with no endpoint allowed: its run fails, nothing sent anywhere
    agent = {"agent_id": "oracle", "name": "Oracle", "kind": "llm", "config": {"model": "m"}}
    app = build_app(app_settings, app_database, llm_allowed_hosts=("llm.test",))
    async with (
        started(app) as served,
        client_for(served, token_factory(scopes=["agent:admin", "agent:run"])) as client,
    ):
        created = await client.post(
            "/api/v1/agents", json={**agent, "config": {"model": "m", "base_url": "http://llm.test"}}
        )
        assert created.status_code == 201, created.text
    app = build_app(app_settings, app_database, llm_allowed_hosts=())  # no longer allowed: the run fails
    async with started(app) as served, client_for(served, token_factory()) as client:
        run = (
            await client.post("/api/v1/agents/run", json={"agent_id": "oracle", "input_text": "hi"})
        ).json()

    assert run["status"] == "failed"
    (payload,) = await finished_events(published_events, run["run_id"])
    assert payload["status"] == "failed"


# --- over the real broker -------------------------------------------------------------------------------


class TestOverTheBroker:
    """The app's own relay, with a broker configured: what reaches `agents.runs`."""

    @pytest.fixture
    def app_settings(self, app_settings: AgentsSettings, kafka_settings: dict[str, Any]) -> AgentsSettings:
        return app_settings.model_copy(update=kafka_settings)

    @pytest.fixture
    def app_factory(self) -> AppFactory:
        return fast_relay

    async def test_the_relay_sends_it_as_the_specs_message(
        self, auth_client: httpx.AsyncClient, app_settings: AgentsSettings
    ) -> None:
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT}
        run = (await auth_client.post("/api/v1/agents/run", json=body)).json()

        options = KafkaOptions.from_settings(app_settings)
        assert options is not None
        found: list[Received] = []
        async with (
            KafkaBroker(options).subscription([AGENTS_RUNS], "agents-test-reader") as subscription,
            asyncio.timeout(TIMEOUT),
        ):
            while not found:
                found = [m for m in await subscription.fetch(0.5) if m.key == run["run_id"]]

        (message,) = found
        assert message.topic == "agents.runs"
        envelope = RawEvent.model_validate_json(message.value)
        assert set(envelope.model_dump()) == {"id", "type", "key", "occurred_at", "version", "payload"}
        assert (envelope.type, envelope.key) == ("run.finished", run["run_id"])
        assert set(envelope.payload) == {
            "run_id",
            "agent_id",
            "owner",
            "status",
            "token_usage",
            "finished_at",
        }
        assert (envelope.payload["owner"], envelope.payload["status"]) == (DEFAULT_SUB, "completed")


def fast_relay(settings: AgentsSettings, *, database: Database) -> ServiceApp:
    """The app with its own relay polling often, so its events reach the broker while the test runs."""
    return create_app(settings, database=database, events=Events(settings, poll_interval=0.05))
