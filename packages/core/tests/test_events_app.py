"""A service's events through `create_app(..., events=...)`: with no broker it serves and keeps its
events in the outbox, `/health` says how many wait, and they drain once a broker appears."""

from __future__ import annotations

import contextlib
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from starling_core.settings import ServiceSettings
from starling_servers import kafka as test_broker
from starling_testkit import AppFactory, BoundDatabase
from starling_testkit.events import PublishedEvents

from .ledgerapp import ENTRY_RECORDED, LedgerSettings, build_ledger
from .polling import eventually


@pytest.fixture
def app_factory() -> AppFactory:
    return build_ledger


async def post_entries(client: httpx.AsyncClient, count: int) -> None:
    for n in range(count):
        response = await client.post(
            "/api/entries", json={"entry_id": f"e{n}", "account": "acc", "amount": 1}
        )
        assert response.status_code == 201


async def events_health(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/health")
    assert response.status_code == 200
    details: dict[str, Any] = response.json()["details"]["events"]
    return details


async def relay_is(client: httpx.AsyncClient, state: str) -> bool:
    return bool((await events_health(client))["relay"]["state"] == state)


async def handled(client: httpx.AsyncClient, count: int) -> bool:
    return bool((await events_health(client))["consumers"]["ledger-balances"]["handled"] >= count)


async def test_with_no_broker_configured_a_service_serves_and_its_events_wait(
    client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    await post_entries(client, 3)
    assert [event.key for event in await published_events.of(ENTRY_RECORDED)] == ["acc"] * 3
    events = await events_health(client)
    assert events["broker"] == "unconfigured"
    assert events["outbox"]["pending"] == 3
    assert events["outbox"]["oldest_age_seconds"] >= 0
    assert events["relay"] == {"state": "unconfigured"}
    assert events["consumers"]["ledger-balances"]["state"] == "stopped"
    # a duplicate is refused, and its event with it
    assert (
        await client.post("/api/entries", json={"entry_id": "e0", "account": "acc", "amount": 1})
    ).status_code == 409
    assert (await events_health(client))["outbox"]["pending"] == 3


async def test_a_service_whose_broker_is_down_serves_and_drains_when_the_broker_appears(
    app_settings: ServiceSettings, app_database: BoundDatabase, kafka_settings: dict[str, Any]
) -> None:
    port = test_broker.free_port()
    settings = app_settings.model_copy(
        update={**kafka_settings, "kafka_bootstrap_servers": f"127.0.0.1:{port}"}
    )
    assert isinstance(settings, LedgerSettings)
    app = build_ledger(settings, database=app_database)
    with contextlib.ExitStack() as broker_lifetime:  # outlives the app, so the app stops as it would
        async with (
            LifespanManager(app) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as client,
        ):
            await post_entries(client, 5)
            await eventually(lambda: relay_is(client, "unreachable"), "the relay finds no broker")
            events = await events_health(client)
            assert events["outbox"]["pending"] == 5
            assert events["relay"]["last_error"] == "KafkaConnectionError"  # its type, never its text

            broker_lifetime.enter_context(test_broker.start(port))
            await eventually(lambda: handled(client, 5), "the five events are handled")
            events = await events_health(client)
            assert events["outbox"]["pending"] == 0
            assert events["relay"]["state"] == "delivering"
            assert (await client.get("/api/balances/acc")).json()["entries"] == 5
