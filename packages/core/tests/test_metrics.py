"""`/metrics`: Prometheus' text format, counting requests by route template, refusals, the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from starling_core.app import create_app
from starling_core.db import Database
from starling_core.metrics import CallbackGauge
from starling_testkit import BoundDatabase

from .itemsapp import ItemSettings, build_app, lifespan

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` with its lifespan run, and its lifespan state in every request."""
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


async def scrape(client: httpx.AsyncClient) -> Samples:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


async def test_metrics_parse_and_count_a_request_made_before_them(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/items/7")).status_code == 404

    samples = await scrape(client)

    labels = {"service": "items", "method": "GET", "route": "/api/items/{item_id:int}", "status": "404"}
    assert value(samples, "starling_requests_total", **labels) == 1
    histogram = {key: labels[key] for key in ("service", "method", "route")}
    assert value(samples, "starling_request_duration_seconds_count", **histogram) == 1
    assert value(samples, "process_resident_memory_bytes") or value(samples, "python_gc_collections_total")
    assert not [name for name, _ in samples if name.endswith("_created")]


async def test_series_are_named_by_route_template_never_by_raw_path(client: httpx.AsyncClient) -> None:
    for item_id in (1, 2, 3):
        await client.get(f"/api/items/{item_id}?token=secret")
    await client.get("/no/such/route")

    samples = await scrape(client)

    routes = {dict(labels)["route"] for name, labels in samples if name == "starling_requests_total"}
    assert "/api/items/{item_id:int}" in routes
    assert "<unmatched>" in routes
    assert not [route for route in routes if "secret" in route or route.startswith("/api/items/1")]


async def test_rate_limit_refusals_are_counted_by_route(
    app_settings: ItemSettings, app_database: BoundDatabase
) -> None:
    app = build_app(app_settings.model_copy(update={"rate_limit": "2/minute"}), database=app_database)
    async with serving(app) as client:
        statuses = [(await client.get("/api/items")).status_code for _ in range(3)]
        samples = await scrape(client)

    assert statuses == [200, 200, 429]
    assert value(samples, "starling_rate_limited_total", service="items", route="/api/items") == 1
    labels = {"service": "items", "method": "GET", "route": "/api/items", "status": "429"}
    assert value(samples, "starling_requests_total", **labels) == 1


async def test_the_database_pool_is_read_at_each_scrape(app_settings: ItemSettings, tmp_path: Any) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    app = build_app(app_settings, database=database)
    try:
        async with serving(app) as client:
            idle = await scrape(client)
            async with database.engine.connect():
                busy = await scrape(client)
    finally:
        await database.dispose()

    assert value(idle, "starling_db_pool_size", service="items") == 5
    assert value(idle, "starling_db_pool_checked_out", service="items") == 0
    assert value(busy, "starling_db_pool_checked_out", service="items") == 1


async def test_a_service_adds_its_own_gauges_read_from_its_state(
    app_settings: ItemSettings, app_database: BoundDatabase
) -> None:
    async def items_in_stock(state: Mapping[str, Any]) -> float:
        return 42.0

    def broken(state: Mapping[str, Any]) -> float:
        raise RuntimeError("cannot read")

    app = create_app(
        app_settings,
        database=app_database,
        routes=[],
        lifespan=lifespan,
        gauges=[
            CallbackGauge(
                "items_database_present",
                "1 when the state holds a database",
                lambda state: float("database" in state),
            ),
            CallbackGauge("items_in_stock", "Items in stock", items_in_stock),
            CallbackGauge("items_broken", "A reading that fails", broken),
        ],
    )
    async with serving(app) as client:
        samples = await scrape(client)

    assert value(samples, "items_database_present", service="items") == 1
    assert value(samples, "items_in_stock", service="items") == 42
    assert not [name for name, _ in samples if name == "items_broken"]  # and the scrape still answered


async def test_metrics_and_probes_are_not_operations_of_the_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert not {"/metrics", "/livez", "/health"} & set(paths)
