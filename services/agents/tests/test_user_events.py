"""The users service's events: `user.changed` and `user.deleted` end the user's earlier tokens on every
route and WebSocket here (core's `agents-tokens` group, `starling_core.revocations`), and `user.deleted`
cancels the user's unfinished runs (this service's `agents` group).

In process, events are handed to the app's own consumer groups (`Consumer.deliver`: the same inbox,
transaction and handlers as from the broker). Over the real broker (the kit's `kafka_broker`), the
users service's outbox is played by this database's own: an event written to it is sent by core's relay
to `users.users`, and the app's consumers take it from there.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import ASGIApp

from starling_agents.settings import AgentsSettings
from starling_core.events import Consumer, Event, Events, Message, Outbox, Outcome
from starling_core.events import topics as contract
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_core.revocations import REVOKED, consumer_group
from starling_core.settings import ServiceSettings
from starling_testkit import BoundDatabase, FrozenClock
from starling_testkit.events import PublishedEvents
from starling_testkit.tokens import DEFAULT_SUB, TokenFactory

from .asgi_ws import websocket_connect
from .helpers import SAMPLE_TEXT, build_app, client_for, started

TIMEOUT = 20.0  # seconds the relay, the broker and the consumer may take on a loaded 2-core machine
TOKENS = consumer_group("agents")


@pytest.fixture
def app_events(app_settings: ServiceSettings) -> Events:
    """The app's events, kept to reach its consumer groups; the relay polls often, so events written
    during a test reach the broker while it runs."""
    return Events(app_settings, poll_interval=0.05)


@pytest.fixture
def app(app_settings: ServiceSettings, app_database: BoundDatabase, app_events: Events) -> Starlette:
    return build_app(app_settings, app_database, events=app_events)


def group(events: Events, name: str) -> Consumer[Any]:
    """The started app's consumer group `name`, with no retries: a failing event raises at once."""
    (consumer,) = [consumer for consumer in events.consumers if consumer.group == name]
    consumer.retry_delays = ()
    return consumer


def changed(user_id: str, at: datetime, kind: Any = contract.USER_CHANGED) -> Event[contract.UserEvent]:
    payload = contract.UserEvent(user_id=user_id, role="user")
    event: Event[contract.UserEvent] = kind.new(user_id, payload, occurred_at=at)
    return event


async def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json()["detail"] == REVOKED


async def queued_runs(client: httpx.AsyncClient, count: int) -> list[str]:
    body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
    return [(await client.post("/api/v1/agents/run", json=body)).json()["run_id"] for _ in range(count)]


@pytest.fixture
async def no_workers(
    app_settings: ServiceSettings, app_database: BoundDatabase, app_events: Events
) -> AsyncIterator[ASGIApp]:
    """The app with no worker: background runs stay queued until something cancels them."""
    async with started(build_app(app_settings, app_database, workers=0, events=app_events)) as served:
        yield served


# --- in process ---------------------------------------------------------------------------------------


async def test_user_changed_refuses_the_users_earlier_tokens_on_every_route_and_the_websocket(
    started_app: ASGIApp, app_events: Events, token_factory: TokenFactory, frozen_clock: FrozenClock
) -> None:
    earlier = token_factory(scopes=["agent:run", "agent:read", "agent:admin"])
    async with client_for(started_app, earlier) as client:
        run_id = (
            await client.post("/api/v1/agents/run", json={"agent_id": "summarizer", "input_text": "Hi."})
        ).json()["run_id"]
        change = frozen_clock.tick(5)
        assert await group(app_events, TOKENS).deliver(changed(DEFAULT_SUB, change)) == Outcome.HANDLED

        for response in (
            await client.get("/api/v1/agents"),
            await client.get("/api/v1/agents/summarizer"),
            await client.post("/api/v1/agents/run", json={"agent_id": "summarizer", "input_text": "Hi."}),
            await client.get("/api/v1/agents/runs"),
            await client.get(f"/api/v1/agents/runs/{run_id}"),
            await client.post(f"/api/v1/agents/runs/{run_id}/cancel"),
            await client.delete("/api/v1/agents/classifier"),
        ):
            assert await refused(response), response.text
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert (await client.get("/health")).status_code == 200  # a probe is no user's route
    async with websocket_connect(
        started_app, f"/api/v1/agents/runs/{run_id}/events", ["bearer", earlier]
    ) as ws:
        assert await ws.accepted()
        assert await ws.receive_json() is None
        assert (ws.close_code, ws.close_reason) == (1008, REVOKED)

    frozen_clock.tick(1)  # a token issued after the change: the user logged in again
    async with client_for(started_app, token_factory()) as client:
        assert (await client.get(f"/api/v1/agents/runs/{run_id}")).status_code == 200
    async with client_for(started_app, token_factory(sub="someone-else")) as client:
        assert (await client.get("/api/v1/agents")).status_code == 200  # nobody else's tokens change


@pytest.mark.parametrize("ending", ["revoked", "expired"])
async def test_an_open_follower_is_closed_once_its_token_ends(
    app_settings: ServiceSettings,
    app_database: BoundDatabase,
    app_events: Events,
    token_factory: TokenFactory,
    ending: str,
) -> None:
    # A WebSocket outlives the check at its handshake: a logged-out, demoted or deleted user's socket,
    # or one whose token expired, went on streaming the run until it ended.
    app = build_app(app_settings, app_database, workers=0, events=app_events, events_poll=0.05)
    async with started(app) as served:
        token = token_factory(expires_in=2 if ending == "expired" else 1800)
        async with client_for(served, token) as client:
            (run_id,) = await queued_runs(client, 1)
        async with websocket_connect(served, f"/api/v1/agents/runs/{run_id}/events", ["bearer", token]) as ws:
            assert await ws.accepted()
            assert await ws.receive_json() == {"type": "status", "status": "queued"}
            if ending == "revoked":
                logout = changed(DEFAULT_SUB, datetime.now(UTC))
                assert await group(app_events, TOKENS).deliver(logout) == Outcome.HANDLED

            assert await ws.receive_json() is None
            reason = REVOKED if ending == "revoked" else "Token has expired"
            assert (ws.close_code, ws.close_reason) == (1008, reason)


async def test_user_deleted_cancels_the_users_unfinished_runs_and_publishes_each(
    no_workers: ASGIApp,
    app_events: Events,
    token_factory: TokenFactory,
    published_events: PublishedEvents,
) -> None:
    earlier = token_factory()
    async with client_for(no_workers, earlier) as client:
        theirs = await queued_runs(client, 3)
        done = (
            await client.post("/api/v1/agents/run", json={"agent_id": "summarizer", "input_text": "Hi."})
        ).json()
    async with client_for(no_workers, token_factory(sub="someone-else")) as client:
        (others,) = await queued_runs(client, 1)

    deletion = changed(DEFAULT_SUB, datetime.now(UTC), contract.USER_DELETED)
    runs, tokens = group(app_events, "agents"), group(app_events, TOKENS)
    assert [await runs.deliver(deletion), await runs.deliver(deletion), await tokens.deliver(deletion)] == [
        Outcome.HANDLED,
        Outcome.DUPLICATE,
        Outcome.HANDLED,
    ]

    async with client_for(
        no_workers, token_factory(sub="an-admin", scopes=["agent:read", "agent:admin"])
    ) as admin:
        statuses = {
            run_id: (await admin.get(f"/api/v1/agents/runs/{run_id}")).json()["status"]
            for run_id in (*theirs, done["run_id"], others)
        }
    assert statuses == {**dict.fromkeys(theirs, "cancelled"), done["run_id"]: "completed", others: "queued"}
    finished = {event.key: event.payload.status for event in await published_events.of(contract.RUN_FINISHED)}
    assert {run_id: finished.get(run_id) for run_id in theirs} == dict.fromkeys(theirs, "cancelled")
    assert others not in finished
    async with client_for(no_workers, earlier) as client:
        assert await refused(await client.get("/api/v1/agents/runs"))  # the deleted user's token is void


async def test_an_event_the_users_service_did_not_send_is_dead_lettered_not_applied(
    started_app: ASGIApp, app_events: Events
) -> None:
    from starling_core.events import EventFailed

    bad = contract.USER_DELETED.new(DEFAULT_SUB, contract.UserEvent.model_construct(user_id="", role=None))
    with pytest.raises(EventFailed):  # an empty user id: no dead-letter topic in process, so it raises
        await group(app_events, "agents").deliver(bad)


# --- over the real broker ----------------------------------------------------------------------------------


async def health_events(client: httpx.AsyncClient) -> dict[str, Any]:
    events: dict[str, Any] = (await client.get("/health")).json()["details"]["events"]
    return events


async def handled(client: httpx.AsyncClient, count: int, name: str = "agents") -> None:
    """Wait until the app's consumer group `name` took `count` events, handled or skipped as duplicates."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            taken = (await health_events(client))["consumers"][name]
            if taken["handled"] + taken["duplicates"] >= count:
                return
            await asyncio.sleep(0.05)  # the consumer works in its own task: nothing to await but its count


async def publish_as_the_users_service(database: BoundDatabase, *events: tuple[Any, str]) -> None:
    """`(kind, user id)` events written to the outbox, as the users service writes them in its change."""
    async with database.transaction() as session:
        for kind, user_id in events:
            await Outbox(session).add(
                kind, key=user_id, payload=contract.UserEvent(user_id=user_id, role="user")
            )


class TestOverTheBroker:
    @pytest.fixture
    def app_settings(self, app_settings: AgentsSettings, kafka_settings: dict[str, Any]) -> AgentsSettings:
        return app_settings.model_copy(update={**kafka_settings, "workers": 0})

    async def test_a_revoked_users_old_token_is_refused_once_user_changed_arrives(
        self, started_app: ASGIApp, app_database: BoundDatabase, token_factory: TokenFactory
    ) -> None:
        earlier = token_factory()
        async with client_for(started_app, earlier) as client:
            assert (await client.get("/api/v1/agents")).status_code == 200

            await publish_as_the_users_service(app_database, (contract.USER_CHANGED, DEFAULT_SUB))
            await handled(client, 1, TOKENS)

            assert await refused(await client.get("/api/v1/agents"))
            taken = (await health_events(client))["consumers"][TOKENS]
            assert (taken["handled"], taken["dead_lettered"], taken["state"]) == (1, 0, "running")
        async with client_for(started_app, token_factory()) as client:  # logged in again since
            assert (await client.get("/api/v1/agents")).status_code == 200

    async def test_user_deleted_cancels_queued_runs_and_a_redelivery_counts_once(
        self,
        app_settings: AgentsSettings,
        started_app: ASGIApp,
        app_database: BoundDatabase,
        token_factory: TokenFactory,
        published_events: PublishedEvents,
    ) -> None:
        async with client_for(started_app, token_factory()) as client:
            queued = await queued_runs(client, 2)
            await publish_as_the_users_service(app_database, (contract.USER_DELETED, DEFAULT_SUB))
            await handled(client, 1)
            # the same event sent again, as a relay that died between send and mark would
            (event,) = [e for e in await published_events.all(contract.USERS) if e.key == DEFAULT_SUB]
            options = KafkaOptions.from_settings(app_settings)
            assert options is not None
            async with KafkaBroker(options).publisher() as publisher:
                await publisher.publish([Message(contract.USERS, event.key, event.to_json())])
            await handled(client, 2)

            taken = (await health_events(client))["consumers"]["agents"]
            assert (taken["handled"], taken["duplicates"]) == (1, 1)
        async with client_for(
            started_app, token_factory(sub="an-admin", scopes=["agent:read", "agent:admin"])
        ) as admin:
            statuses = [
                (await admin.get(f"/api/v1/agents/runs/{run_id}")).json()["status"] for run_id in queued
            ]
        assert statuses == ["cancelled", "cancelled"]
        cancelled = [e for e in await published_events.of(contract.RUN_FINISHED) if e.key in queued]
        assert sorted(e.key for e in cancelled) == sorted(queued)  # one run.finished each, not two
