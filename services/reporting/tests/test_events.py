"""The events reporting consumes: `order.placed` from `orders` (counted once however often it comes, and
once beside `POST /api/v1/orders`) and `run.finished` from `agents.runs` (the agent usage, beside the
runs API's pull, each run once).

In process, events are handed to the app's consumer group (`Consumer.deliver`: the same inbox,
transaction and handlers as from the broker). Over the real broker (the kit's `kafka_broker`), the
publisher's outbox is played by this database's own: an event written there is sent by core's relay,
and the app's consumer takes it from the topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import String, select
from starlette.types import ASGIApp

from starling_core import revocations
from starling_core.app import ServiceApp
from starling_core.db import Database
from starling_core.events import Consumer, EventFailed, Events, Message, Outbox, Outcome
from starling_core.events import topics as contract
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_reporting.app import create_app
from starling_reporting.models import ReportingBase
from starling_reporting.repository import ReportingStores
from starling_reporting.schemas import (
    ORDER_PLACED,
    RUN_FINISHED,
    OrderIn,
)
from starling_reporting.service import AgentUsageService, OrdersService
from starling_reporting.settings import ReportingSettings
from starling_testkit import AppFactory, BoundDatabase, FrozenClock
from starling_testkit.events import PublishedEvents
from starling_testkit.tokens import DEFAULT_SUB, TokenFactory

from .fakes import T0, order, order_json

TIMEOUT = 20.0  # seconds the relay, the broker and the consumer may take on a loaded 2-core machine
OWNER = "user-4242-owner"


class DownAgents:
    """The agents service's runs API, answering 503, or the runs it is given."""

    def __init__(self) -> None:
        self.runs: list[dict[str, Any]] | None = None

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.runs is None:
            return httpx.Response(503, json={"detail": "down"})
        return httpx.Response(200, json={"items": self.runs, "next_cursor": None})


@pytest.fixture
def agents() -> DownAgents:
    return DownAgents()


async def no_sleep(delay: float) -> None:
    return None


def build(settings: ReportingSettings, database: Database, agents: DownAgents, **extra: Any) -> ServiceApp:
    return create_app(
        settings, database=database, agents_transport=httpx.MockTransport(agents), sleep=no_sleep, **extra
    )


@pytest.fixture
def app_factory(agents: DownAgents) -> AppFactory:
    def factory(settings: ReportingSettings, *, database: Database) -> ServiceApp:
        return build(settings, database, agents)

    return factory


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def reader(token_factory: TokenFactory) -> dict[str, str]:
    return bearer(token_factory(scopes=["reports:read", "reports:write"]))


def consumer_of(database: Database) -> Consumer[Any]:
    """The app's consumer group, as its lifespan builds it, on the test's database."""
    stores = ReportingStores(database)
    usage = AgentUsageService(stores, gateway=None)  # type: ignore[arg-type]  # handlers never pull
    return (
        Consumer(stores, "reporting", retry_delays=())
        .on(ORDER_PLACED, OrdersService(stores).place_from_event)
        .on(RUN_FINISHED, usage.record_finished)
    )


def placed(an_order: OrderIn) -> Any:
    return ORDER_PLACED.new(an_order.order_id, an_order)


def finished(run_id: str, agent_id: str, tokens: int, at: datetime, status: str = "completed") -> Any:
    payload = contract.RunFinished(
        run_id=run_id, agent_id=agent_id, owner=OWNER, status=status, token_usage=tokens, finished_at=at
    )
    return contract.RUN_FINISHED.new(run_id, payload, occurred_at=at)


async def top(client: httpx.AsyncClient, headers: dict[str, str]) -> list[tuple[str, int]]:
    response = await client.get("/top-products", headers=headers)
    assert response.status_code == 200, response.text
    return [(row["product_id"], row["cnt_bought"]) for row in response.json()]


async def usage(
    client: httpx.AsyncClient, headers: dict[str, str], **query: str
) -> list[tuple[str, int, int]]:
    response = await client.get("/api/v1/reports/agent-usage", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return [(row["agent_id"], row["runs"], row["token_usage"]) for row in response.json()]


# --- orders ---------------------------------------------------------------------------------------------


async def test_an_order_placed_is_counted_once_however_often_it_arrives(
    client: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str]
) -> None:
    consumer = consumer_of(app_database)
    first = placed(order("o1", ("p1", "Apple", 3)))
    replay = placed(order("o1", ("p1", "Apple", 3)))  # the same order under a new event id

    outcomes = [await consumer.deliver(first), await consumer.deliver(first), await consumer.deliver(replay)]

    assert outcomes == [Outcome.HANDLED, Outcome.DUPLICATE, Outcome.HANDLED]
    assert await top(client, reader) == [("p1", 3)]


async def test_an_order_both_posted_and_published_is_counted_once(
    client: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str]
) -> None:
    posted = await client.post(
        "/api/v1/orders",
        json={"orders": [order("o1", ("p1", "Apple", 2)).model_dump(mode="json")]},
        headers=reader,
    )
    assert posted.json() == {"accepted": 1, "duplicates": 0}

    await consumer_of(app_database).deliver(placed(order("o1", ("p1", "Apple", 2))))
    await consumer_of(app_database).deliver(placed(order("o2", ("p1", "Apple", 1))))
    again = await client.post(
        "/api/v1/orders",
        json={"orders": [order("o2", ("p1", "Apple", 1)).model_dump(mode="json")]},
        headers=reader,
    )

    assert again.json() == {"accepted": 0, "duplicates": 1}
    assert await top(client, reader) == [("p1", 3)]


async def test_an_order_post_would_refuse_is_refused_from_the_topic_too(app_database: BoundDatabase) -> None:
    bad = contract.ORDER_PLACED.new(
        "o1",
        contract.OrderPlaced.model_construct(
            order_id="o1", created_at=T0, items=[]
        ),  # no items: a 422 by POST
    )
    with pytest.raises(EventFailed):  # in process there is no dead-letter topic: the consumer says so
        await consumer_of(app_database).deliver(bad)


# --- agent usage ----------------------------------------------------------------------------------------


def pulled(
    run_id: str, agent_id: str, tokens: int, created: datetime, done: datetime | None
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "agent_id": agent_id,
        "status": "completed" if done else "running",
        "output": None,
        "token_usage": tokens,
        "error": None,
        "created_at": created.isoformat(),
        "finished_at": done.isoformat() if done else None,
    }


async def test_run_finished_keeps_the_usage_current_while_the_agents_service_is_down(
    client: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str]
) -> None:
    consumer = consumer_of(app_database)
    for event in (finished("r1", "summarizer", 10, T0), finished("r2", "summarizer", 5, T0)):
        assert await consumer.deliver(event) == Outcome.HANDLED
        assert await consumer.deliver(event) == Outcome.DUPLICATE

    assert await usage(client, reader) == [("summarizer", 2, 15)]  # the pull failed: 503 from agents


async def test_the_pull_and_the_events_combine_one_row_per_run(
    client: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str], agents: DownAgents
) -> None:
    created, done = T0, T0 + timedelta(minutes=5)
    consumer = consumer_of(app_database)
    await consumer.deliver(finished("r1", "summarizer", 10, done))  # known from its event first
    # the pull read r1 while it was still running (an older view), and r2, still running
    agents.runs = [pulled("r1", "summarizer", 0, created, None), pulled("r2", "classifier", 0, created, None)]

    assert await usage(client, reader) == [("classifier", 1, 0), ("summarizer", 1, 10)]

    await consumer.deliver(finished("r2", "classifier", 7, done))  # r2 ends: its event updates the row
    agents.runs = None
    assert await usage(client, reader) == [("classifier", 1, 7), ("summarizer", 1, 10)]
    # the pull gave r1 its creation time: the range now places it there, not at its finish
    assert await usage(client, reader, until=(created + timedelta(minutes=1)).isoformat()) == [
        ("classifier", 1, 7),
        ("summarizer", 1, 10),
    ]


async def test_a_run_known_only_from_its_event_is_placed_in_time_by_its_finish(
    client: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str]
) -> None:
    await consumer_of(app_database).deliver(finished("r1", "summarizer", 4, T0 + timedelta(hours=1)))
    assert await usage(client, reader, since=(T0 + timedelta(minutes=30)).isoformat()) == [
        ("summarizer", 1, 4)
    ]
    assert await usage(client, reader, until=(T0 + timedelta(minutes=30)).isoformat()) == []


async def test_no_user_is_named_in_reportings_data(app_database: BoundDatabase) -> None:
    await consumer_of(app_database).deliver(finished("r1", "summarizer", 4, T0))
    await consumer_of(app_database).deliver(placed(order("o1", ("p1", "Apple", 1))))

    found = []
    async with app_database.session() as session:
        for table in ReportingBase.metadata.sorted_tables:
            for column in table.columns:
                if isinstance(column.type, String):
                    hits = (await session.execute(select(column).where(column.contains(OWNER)))).all()
                    found += [f"{table.name}.{column.name}"] * len(hits)
    assert found == []  # the event's owner is not read, so a user's deletion leaves nothing to erase


# --- revoked tokens -----------------------------------------------------------------------------------

REVOKED = {"detail": revocations.REVOKED}


@pytest.mark.parametrize("kind", [contract.USER_CHANGED, contract.USER_DELETED])
async def test_a_users_tokens_from_before_the_event_are_refused_and_later_ones_are_not(
    client: httpx.AsyncClient,
    app: ServiceApp,
    token_factory: TokenFactory,
    frozen_clock: FrozenClock,
    kind: Any,
) -> None:
    scopes = ["reports:read", "reports:write"]
    earlier, someone_else = (
        bearer(token_factory(scopes=scopes)),
        bearer(token_factory("someone", scopes=scopes)),
    )
    event = kind.new(DEFAULT_SUB, contract.UserEvent(user_id=DEFAULT_SUB), occurred_at=frozen_clock.tick(5))
    assert app.revocations is not None  # core's, as its `reporting-tokens` group feeds them
    tokens = app.revocations.consumer(revocations.consumer_group("reporting"))

    assert await tokens.deliver(event) == Outcome.HANDLED

    for response in (
        await client.get("/top-products", headers=earlier),
        await client.post(
            "/api/v1/orders", json={"orders": [order_json("o1", ("p1", "Apple", 1))]}, headers=earlier
        ),
        await client.get("/api/v1/reports/agent-usage", headers=earlier),
        await client.post("/api/v1/extractions", headers=earlier),
    ):
        assert (response.status_code, response.json()) == (401, REVOKED)
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get("/health", headers=earlier)).status_code == 200  # a probe names no user
    posted = await client.post(
        "/api/v1/orders", json={"orders": [order_json("o1", ("p1", "Apple", 1))]}, headers=someone_else
    )
    assert posted.status_code == 202
    frozen_clock.tick(1)  # logged in again after the change
    assert (
        await client.get("/top-products", headers=bearer(token_factory(scopes=scopes)))
    ).status_code == 200


# --- over the real broker -------------------------------------------------------------------------------


async def health_events(client: httpx.AsyncClient) -> dict[str, Any]:
    events: dict[str, Any] = (await client.get("/health")).json()["details"]["events"]
    return events


async def taken(client: httpx.AsyncClient, count: int, name: str = "reporting") -> dict[str, Any]:
    """The consumer group `name`'s counts once it took `count` events, handled or skipped as duplicates."""
    async with asyncio.timeout(TIMEOUT):
        while True:
            group: dict[str, Any] = (await health_events(client))["consumers"][name]
            if group["handled"] + group["duplicates"] >= count:
                return group
            await asyncio.sleep(0.05)  # the consumer works in its own task: nothing to await but its count


async def publish(database: Database, *events: tuple[Any, str, Any]) -> None:
    """`(kind, key, payload)` written to the outbox, as their publisher writes them in its transaction."""
    async with database.transaction() as session:
        for kind, key, payload in events:
            await Outbox(session).add(kind, key=key, payload=payload)


class TestOverTheBroker:
    @pytest.fixture
    def app_settings(
        self, app_settings: ReportingSettings, kafka_settings: dict[str, Any]
    ) -> ReportingSettings:
        return app_settings.model_copy(update=kafka_settings)

    @pytest.fixture
    def app_factory(self, agents: DownAgents) -> AppFactory:
        def factory(settings: ReportingSettings, *, database: Database) -> ServiceApp:
            return build(settings, database, agents, events=Events(settings, poll_interval=0.05))

        return factory

    @pytest.fixture
    async def served(self, started_app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=started_app), base_url="http://testserver"
        ) as client:
            yield client

    async def test_orders_from_the_topic_are_counted_once_through_redelivery_and_replay(
        self,
        served: httpx.AsyncClient,
        app_database: BoundDatabase,
        app_settings: ReportingSettings,
        reader: dict[str, str],
        published_events: PublishedEvents,
    ) -> None:
        one = contract.OrderPlaced.model_validate(order("o1", ("p1", "Apple", 3)).model_dump())
        two = contract.OrderPlaced.model_validate(
            order("o2", ("p2", "Pear", 1), ("p1", "Apple", 1)).model_dump()
        )
        await publish(app_database, (contract.ORDER_PLACED, "o1", one), (contract.ORDER_PLACED, "o2", two))
        assert (await taken(served, 2))["handled"] == 2

        # o1's event again, as a relay that died between send and mark sends it; and o1 replayed upstream
        # under a new event id
        (sent,) = [e for e in await published_events.all("orders") if e.key == "o1"]
        options = KafkaOptions.from_settings(app_settings)
        assert options is not None
        async with KafkaBroker(options).publisher() as publisher:
            await publisher.publish([Message("orders", "o1", sent.to_json())])
        await publish(app_database, (contract.ORDER_PLACED, "o1", one))
        group = await taken(served, 4)

        assert (group["handled"], group["duplicates"], group["dead_lettered"]) == (3, 1, 0)
        assert await top(served, reader) == [("p1", 4), ("p2", 1)]

    async def test_a_revoked_users_old_token_is_refused_once_user_changed_arrives(
        self, served: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str]
    ) -> None:
        assert (
            await served.get("/api/v1/reports/agent-usage", headers=reader)
        ).status_code == 503  # agents down
        await publish(
            app_database,
            (contract.USER_CHANGED, DEFAULT_SUB, contract.UserEvent(user_id=DEFAULT_SUB, role="user")),
        )
        await taken(served, 1, revocations.consumer_group("reporting"))
        refused = await served.get("/api/v1/reports/agent-usage", headers=reader)
        assert (refused.status_code, refused.json()) == (401, REVOKED)

    async def test_runs_finished_reach_the_agent_usage(
        self, served: httpx.AsyncClient, app_database: BoundDatabase, reader: dict[str, str]
    ) -> None:
        at = datetime.now(UTC)
        await publish(
            app_database,
            *[
                (contract.RUN_FINISHED, f"r{n}", finished(f"r{n}", "summarizer", n, at).payload)
                for n in range(1, 4)
            ],
        )
        await taken(served, 3)
        assert await usage(served, reader) == [("summarizer", 3, 6)]
