"""Every route through the kit's clients: success, refusals, validation, unavailability."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from starling_reporting.app import create_app
from starling_reporting.routes import REPORTS_READ, REPORTS_WRITE, ReportingState
from starling_reporting.settings import ReportingSettings
from starling_testkit import BoundDatabase
from starling_testkit.queries import MaxQueries
from starling_testkit.tokens import TokenFactory

from .fakes import order_json

Handler = Callable[[httpx.Request], httpx.Response]
Pages = dict[str | None, tuple[list[dict[str, Any]], str | None]]


async def no_sleep(delay: float) -> None:
    """Retries never wait in tests."""


@pytest.fixture
def writer(token_factory: TokenFactory) -> dict[str, str]:
    return {"Authorization": f"Bearer {token_factory(sub='shop', scopes=[REPORTS_WRITE, REPORTS_READ])}"}


class KeepLifespanState:
    """The app, keeping the state its lifespan yields (the mapping each request gets as `request.state`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.lifespan_state: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            self.lifespan_state = scope["state"]  # filled in by the lifespan at start-up
        await self.app(scope, receive, send)


@asynccontextmanager
async def serve(
    app_settings: ReportingSettings,
    db_connection: AsyncConnection,
    *,
    orders: Handler | None = None,
    agents: Handler | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[ReportingState, httpx.AsyncClient]]:
    """The app with mocked upstream and agents services, on the test's transaction."""
    app = KeepLifespanState(
        create_app(
            app_settings.model_copy(update=settings),
            database=BoundDatabase(db_connection),
            orders_transport=httpx.MockTransport(orders) if orders else None,
            agents_transport=httpx.MockTransport(agents) if agents else None,
            sleep=no_sleep,
        )
    )
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver") as c,
    ):
        yield cast(ReportingState, app.lifespan_state), c


def upstream(pages: Pages) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        items, next_cursor = pages[request.url.params.get("cursor")]
        return httpx.Response(200, json={"items": items, "next_cursor": next_cursor})

    return handle


def down(request: httpx.Request) -> httpx.Response:
    return httpx.Response(503, json={"detail": "down"})


def agents_api(runs: list[dict[str, Any]]) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": runs, "next_cursor": None})

    return handle


def run(run_id: str, agent_id: str, tokens: int, created_at: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "agent_id": agent_id,
        "status": "completed",
        "output": "ok",
        "token_usage": tokens,
        "error": None,
        "created_at": created_at,
        "finished_at": created_at,
    }


# --- POST /api/v1/orders --------------------------------------------------------------------------


async def test_posting_new_orders_gets_202_with_counts(admin_client: httpx.AsyncClient) -> None:
    body = {"orders": [order_json("o1", ("p1", "Apple", 2)), order_json("o2", ("p2", "Pear", 1))]}
    response = await admin_client.post("/api/v1/orders", json=body)
    assert response.status_code == 202
    assert response.json() == {"accepted": 2, "duplicates": 0}


async def test_replaying_orders_counts_them_as_duplicates(admin_client: httpx.AsyncClient) -> None:
    body = {"orders": [order_json("o1", ("p1", "Apple", 2))]}
    await admin_client.post("/api/v1/orders", json=body)
    response = await admin_client.post("/api/v1/orders", json=body)
    assert response.json() == {"accepted": 0, "duplicates": 1}


async def test_posting_orders_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/orders", json={"orders": [order_json("o1", ("p1", "A", 1))]})
    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]


async def test_posting_orders_without_reports_write_gets_403(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.post("/api/v1/orders", json={"orders": [order_json("o1", ("p1", "A", 1))]})
    assert response.status_code == 403
    assert "reports:write" in response.json()["detail"]


def _with_item(**change: Any) -> dict[str, Any]:
    body = order_json("o1", ("p1", "Apple", 1))
    body["items"][0].update(change)
    return {"orders": [body]}


@pytest.mark.parametrize(
    ("body", "location"),
    [
        pytest.param({"orders": []}, ["body", "orders"], id="no-orders"),
        pytest.param(
            {"orders": [order_json(f"o{i}", ("p", "P", 1)) for i in range(1001)]},
            ["body", "orders"],
            id="over-1000-orders",
        ),
        pytest.param(
            {"orders": [{**order_json("o1", ("p", "P", 1)), "items": []}]},
            ["body", "orders", 0, "items"],
            id="no-items",
        ),
        pytest.param(_with_item(quantity=0), ["body", "orders", 0, "items", 0, "quantity"], id="quantity-0"),
        pytest.param(
            _with_item(unit_price=-1), ["body", "orders", 0, "items", 0, "unit_price"], id="price-below-0"
        ),
    ],
)
async def test_invalid_orders_get_422(
    admin_client: httpx.AsyncClient, body: Any, location: list[Any]
) -> None:
    response = await admin_client.post("/api/v1/orders", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == location


async def test_an_invalid_batch_stores_nothing(admin_client: httpx.AsyncClient) -> None:
    good = order_json("o1", ("p1", "Apple", 1))
    bad = _with_item(quantity=0)["orders"][0] | {"order_id": "o2"}
    assert (await admin_client.post("/api/v1/orders", json={"orders": [good, bad]})).status_code == 422
    assert (await admin_client.get("/top-products")).status_code == 503


async def test_concurrent_replays_store_each_order_once(admin_client: httpx.AsyncClient) -> None:
    body = {
        "orders": [
            order_json("o1", ("p1", "Apple", 2)),
            order_json("o2", ("p1", "Apple", 3)),
            order_json("o3", ("p2", "Pear", 1)),
        ]
    }
    first, second = await asyncio.gather(
        admin_client.post("/api/v1/orders", json=body), admin_client.post("/api/v1/orders", json=body)
    )
    assert first.status_code == second.status_code == 202
    assert first.json()["accepted"] + second.json()["accepted"] == 3
    assert first.json()["duplicates"] + second.json()["duplicates"] == 3
    ranking = (await admin_client.get("/top-products")).json()
    assert [(p["product_id"], p["cnt_bought"]) for p in ranking] == [("p1", 5), ("p2", 1)]


# --- GET /top-products ----------------------------------------------------------------------------


async def test_top_products_ranks_by_units_then_title(admin_client: httpx.AsyncClient) -> None:
    body = {
        "orders": [
            order_json("o1", ("pear", "Pear", 4), ("kiwi", "Kiwi", 1)),
            order_json("o2", ("apple", "Apple", 4)),
        ]
    }
    await admin_client.post("/api/v1/orders", json=body)
    response = await admin_client.get("/top-products", params={"count": 2})
    assert response.status_code == 200
    assert response.json() == [
        {"product_id": "apple", "title": "Apple", "rank": 1, "cnt_bought": 4},
        {"product_id": "pear", "title": "Pear", "rank": 2, "cnt_bought": 4},
    ]


async def test_top_products_filters_by_since_and_until(admin_client: httpx.AsyncClient) -> None:
    await admin_client.post(
        "/api/v1/orders",
        json={"orders": [order_json("o1", ("p1", "Apple", 1)) | {"created_at": "2026-03-01T12:00:00+02:00"}]},
    )
    inside = await admin_client.get("/top-products", params={"since": "2026-03-01T10:00:00Z"})
    outside = await admin_client.get("/top-products", params={"until": "2026-03-01T10:00:00Z"})
    assert [p["product_id"] for p in inside.json()] == ["p1"]
    assert outside.json() == []


async def test_top_products_is_one_query(
    admin_client: httpx.AsyncClient, auth_client: httpx.AsyncClient, assert_max_queries: MaxQueries
) -> None:
    orders = [order_json(f"o{i}", (f"p{i % 7}", f"T{i % 7}", i + 1)) for i in range(40)]
    await admin_client.post("/api/v1/orders", json={"orders": orders})
    with assert_max_queries(2) as statements:
        response = await auth_client.get("/top-products", params={"count": 5})
    assert response.status_code == 200
    assert len(response.json()) == 5
    # the ranking in one query, beside the look-up of the token's revocation (revocations.py)
    ranking = [statement for statement in statements if "token_revocations" not in statement]
    assert len(ranking) == 1, statements


async def test_top_products_before_any_order_gets_503(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/top-products")
    assert response.status_code == 503
    assert "detail" in response.json()


@pytest.mark.parametrize("count", ["0", "101", "many"])
async def test_top_products_count_outside_1_to_100_gets_422(
    auth_client: httpx.AsyncClient, count: str
) -> None:
    response = await auth_client.get("/top-products", params={"count": count})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "count"]


async def test_top_products_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/top-products")).status_code == 401


async def test_top_products_without_reports_read_gets_403(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    token = token_factory(scopes=[REPORTS_WRITE])
    response = await client.get("/top-products", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert "reports:read" in response.json()["detail"]


# --- POST /api/v1/extractions ---------------------------------------------------------------------


async def test_extraction_without_an_upstream_gets_503(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post("/api/v1/extractions")
    assert response.status_code == 503
    assert "not configured" in response.json()["detail"]


async def test_extraction_stores_the_upstream_orders_and_is_incremental(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    pages: Pages = {
        None: ([order_json("o1", ("p1", "Apple", 2))], "c1"),
        "c1": ([order_json("o2", ("p1", "Apple", 1))], None),
    }
    async with serve(app_settings, db_connection, orders=upstream(pages), upstream_url="http://up") as (_, c):
        first = await c.post("/api/v1/extractions", headers=writer)
        again = await c.post("/api/v1/extractions", headers=writer)
        ranking = await c.get("/top-products", headers=writer)
    assert first.status_code == 200
    assert first.json() == {"orders_count": 2, "cursor": "c1"}
    assert again.json() == {"orders_count": 0, "cursor": "c1"}
    assert [(p["product_id"], p["cnt_bought"]) for p in ranking.json()] == [("p1", 3)]


async def test_extraction_with_the_upstream_down_gets_503(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    async with serve(app_settings, db_connection, orders=down, upstream_url="http://up") as (_, c):
        response = await c.post("/api/v1/extractions", headers=writer)
    assert response.status_code == 503
    assert "unavailable" in response.json()["detail"]


@pytest.mark.parametrize(
    ("items", "next_cursor"),
    [([order_json("o\x00", ("p1", "Apple", 1))], None), ([order_json("o1", ("p1", "Apple", 1))], "c" * 2001)],
    ids=["nul-in-an-order", "cursor-longer-than-the-checkpoint-holds"],
)
async def test_an_upstream_answer_no_database_stores_gets_503(
    app_settings: ReportingSettings,
    db_connection: AsyncConnection,
    writer: dict[str, str],
    items: list[dict[str, Any]],
    next_cursor: str | None,
) -> None:
    # What PostgreSQL refuses (a NUL, a checkpoint over its 2,000 characters) was a 500, mid-extraction.
    pages: Pages = {None: (items, next_cursor)}
    async with serve(app_settings, db_connection, orders=upstream(pages), upstream_url="http://up") as (_, c):
        response = await c.post("/api/v1/extractions", headers=writer)
    assert response.status_code == 503
    assert "unexpected answer" in response.json()["detail"]


async def test_extraction_without_reports_write_gets_403(auth_client: httpx.AsyncClient) -> None:
    assert (await auth_client.post("/api/v1/extractions")).status_code == 403


async def test_extraction_interval_runs_it_from_the_lifespan(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    pages: Pages = {None: ([order_json("o1", ("p1", "Apple", 2))], None)}
    async with serve(
        app_settings,
        db_connection,
        orders=upstream(pages),
        upstream_url="http://up",
        extraction_interval=3600,
    ) as (state, c):
        await asyncio.wait_for(state["extraction_ran"].wait(), timeout=10)
        ranking = await c.get("/top-products", headers=writer)
    assert [(p["product_id"], p["cnt_bought"]) for p in ranking.json()] == [("p1", 2)]
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "reporting-periodic-extraction"]


# --- GET /api/v1/reports/agent-usage --------------------------------------------------------------


async def test_agent_usage_sums_runs_and_tokens_per_agent(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    runs = [run("r1", "summarizer", 10), run("r2", "summarizer", 5), run("r3", "classifier", 7)]
    async with serve(app_settings, db_connection, agents=agents_api(runs)) as (_, c):
        response = await c.get("/api/v1/reports/agent-usage", headers=writer)
    assert response.status_code == 200
    assert response.json() == [
        {"agent_id": "classifier", "runs": 1, "token_usage": 7},
        {"agent_id": "summarizer", "runs": 2, "token_usage": 15},
    ]


async def test_agent_usage_answers_from_stored_runs_while_agents_is_down(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    async with serve(app_settings, db_connection, agents=agents_api([run("r1", "summarizer", 10)])) as (_, c):
        await c.get("/api/v1/reports/agent-usage", headers=writer)
    async with serve(app_settings, db_connection, agents=down) as (_, c):
        response = await c.get("/api/v1/reports/agent-usage", headers=writer)
    assert response.status_code == 200
    assert response.json() == [{"agent_id": "summarizer", "runs": 1, "token_usage": 10}]


async def test_agent_usage_filters_by_time(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    runs = [
        run("r1", "summarizer", 10, "2026-01-01T00:00:00Z"),
        run("r2", "summarizer", 5, "2026-02-01T00:00:00Z"),
    ]
    async with serve(app_settings, db_connection, agents=agents_api(runs)) as (_, c):
        response = await c.get(
            "/api/v1/reports/agent-usage", params={"until": "2026-01-15T00:00:00Z"}, headers=writer
        )
    assert response.json() == [{"agent_id": "summarizer", "runs": 1, "token_usage": 10}]


async def test_a_token_usage_past_what_the_column_holds_is_an_unexpected_answer_not_a_500(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    # BIGINT holds 2**63 - 1: one more overflowed in the driver, on SQLite and PostgreSQL alike.
    async with serve(app_settings, db_connection, agents=agents_api([run("r1", "summarizer", 2**63)])) as (
        _,
        c,
    ):
        response = await c.get("/api/v1/reports/agent-usage", headers=writer)
    assert response.status_code == 503
    assert "agents service" in response.json()["detail"]


async def test_agent_usage_with_agents_down_and_nothing_stored_gets_503(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    async with serve(app_settings, db_connection, agents=down) as (_, c):
        response = await c.get("/api/v1/reports/agent-usage", headers=writer)
    assert response.status_code == 503
    assert "agents service" in response.json()["detail"]


async def test_agent_usage_without_a_token_gets_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/v1/reports/agent-usage")).status_code == 401


async def test_agent_usage_with_until_before_since_gets_422(auth_client: httpx.AsyncClient) -> None:
    params = {"since": "2026-02-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"}
    response = await auth_client.get("/api/v1/reports/agent-usage", params=params)
    assert response.status_code == 422


async def test_each_503_says_exactly_why(
    app_settings: ReportingSettings, db_connection: AsyncConnection, writer: dict[str, str]
) -> None:
    async with serve(app_settings, db_connection, orders=down, agents=down, upstream_url="http://up") as (
        _,
        c,
    ):
        top = await c.get("/top-products", headers=writer)
        extraction = await c.post("/api/v1/extractions", headers=writer)
        usage = await c.get("/api/v1/reports/agent-usage", headers=writer)
    assert [top.status_code, extraction.status_code, usage.status_code] == [503, 503, 503]
    assert top.json() == {"detail": "No order data has arrived yet"}
    assert extraction.json() == {"detail": "The upstream orders API is unavailable: orders: HTTP 503"}
    assert usage.json() == {"detail": "The agents service is unavailable: api/v1/agents/runs: HTTP 503"}


async def test_extraction_not_configured_says_which_setting(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post("/api/v1/extractions")
    assert response.json() == {"detail": "Extraction is not configured: set STARLING_REPORTING_UPSTREAM_URL"}


# --- the service as a whole -----------------------------------------------------------------------


async def test_health_names_the_service(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    body = response.json()
    assert {key: body[key] for key in ("status", "service", "checks")} == {
        "status": "healthy",
        "service": "reporting",
        "checks": {"database": "ok"},
    }
    # its consumer group, stopped while no broker is configured
    assert body["details"]["events"]["consumers"]["reporting"]["state"] == "stopped"


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/v1/orders", "/top-products", "/api/v1/extractions", "/api/v1/reports/agent-usage"} <= set(
        paths
    )


async def test_openapi_gives_each_list_report_its_own_item_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    def item_schema(path: str) -> object:
        return paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["items"]

    assert item_schema("/top-products") == {"$ref": "#/components/schemas/TopProductOut"}
    assert item_schema("/api/v1/reports/agent-usage") == {"$ref": "#/components/schemas/AgentUsageOut"}


async def test_openapi_says_what_a_price_accepts(client: httpx.AsyncClient) -> None:
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    number, text = schemas["OrderItemIn"]["properties"]["unit_price"]["anyOf"]
    assert (number["minimum"], number["multipleOf"]) == (0, 0.01)
    assert text["pattern"] == r"^[0-9]{1,10}(\.[0-9]{1,2})?$"
