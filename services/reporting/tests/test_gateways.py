"""The HTTP gateways against respx: pagination, retries, an upstream that stays down.

The clients are the real ones (core's RetryTransport around httpx's default transport), so respx
intercepts below the retries, and a recording `sleep` means a retry never waits.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import respx

from starling_core.http import create_http_client
from starling_core.tokens import JWTConfig, decode_token
from starling_reporting.errors import UpstreamUnavailable
from starling_reporting.gateways import HttpAgentRunsGateway, HttpOrdersGateway, OrdersPage, service_token

from .fakes import order_json

CONFIG = JWTConfig(
    "gateway-test-secret-0123456789abcdef", "gateway-test-secret-0123456789abcdef", "starling-users"
)
UPSTREAM_URL = "http://upstream/v2"
AGENTS_URL = "http://agents"


def mocked(base_url: str) -> respx.MockRouter:
    """Every request is answered by a route; an unmatched one fails the test."""
    return respx.mock(base_url=base_url, assert_all_called=False)


def client(delays: list[float], base_url: str = UPSTREAM_URL) -> httpx.AsyncClient:
    async def record(delay: float) -> None:
        delays.append(delay)

    return create_http_client(base_url, sleep=record)


async def collect(gateway: HttpOrdersGateway, cursor: str | None = None) -> list[OrdersPage]:
    return [page async for page in gateway.pages(cursor)]


def first_page() -> httpx.Response:
    items = [order_json("o1", ("p", "P", 1)), order_json("o2", ("p", "P", 1))]
    return httpx.Response(200, json={"items": items, "next_cursor": "c1"})


def last_page() -> httpx.Response:
    return httpx.Response(200, json={"items": [order_json("o3", ("p", "P", 1))], "next_cursor": None})


def refused() -> httpx.ConnectError:
    return httpx.ConnectError("connection refused")


async def test_orders_gateway_follows_next_cursor_until_null() -> None:
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(side_effect=[first_page(), last_page()])
        async with client([]) as http:
            pages = await collect(HttpOrdersGateway(http, page_size=2))
    assert [[o.order_id for o in page.orders] for page in pages] == [["o1", "o2"], ["o3"]]
    assert [page.resume_cursor for page in pages] == ["c1", "c1"]
    assert route.call_count == 2
    assert [str(call.request.url) for call in route.calls] == [
        "http://upstream/v2/orders?limit=2",
        "http://upstream/v2/orders?limit=2&cursor=c1",
    ]
    assert dict(route.calls[0].request.url.params) == {"limit": "2"}
    assert dict(route.calls[1].request.url.params) == {"limit": "2", "cursor": "c1"}


async def test_orders_gateway_streams_orders_from_a_cursor() -> None:
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(side_effect=[last_page()])
        async with client([]) as http:
            orders = [o.order_id async for o in HttpOrdersGateway(http).orders("c1")]
    assert orders == ["o3"]
    assert route.call_count == 1
    assert route.calls[0].request.url.params["cursor"] == "c1"


async def test_orders_gateway_retries_a_failing_upstream() -> None:
    delays: list[float] = []
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(
            side_effect=[httpx.Response(503), httpx.Response(503), first_page(), last_page()]
        )
        async with client(delays) as http:
            pages = await collect(HttpOrdersGateway(http))
    assert len(pages) == 2
    assert len(delays) == 2
    assert route.call_count == 4
    # The retries repeat the same read; only the page after them moves the cursor on.
    assert [call.request.url.params.get("cursor") for call in route.calls] == [None, None, None, "c1"]


async def test_orders_gateway_retries_a_refused_connection() -> None:
    delays: list[float] = []
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(side_effect=[refused(), first_page(), refused(), last_page()])
        async with client(delays) as http:
            pages = await collect(HttpOrdersGateway(http))
    assert [[o.order_id for o in page.orders] for page in pages] == [["o1", "o2"], ["o3"]]
    assert len(delays) == 2
    assert route.call_count == 4
    assert [call.request.url.params.get("cursor") for call in route.calls] == [None, None, "c1", "c1"]


async def test_orders_gateway_raises_when_the_upstream_stays_down() -> None:
    delays: list[float] = []
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(side_effect=[httpx.Response(503) for _ in range(5)])
        async with client(delays) as http:
            with pytest.raises(UpstreamUnavailable, match="503"):
                await collect(HttpOrdersGateway(http))
    assert route.call_count == 4  # the first try and three retries
    assert len(delays) == 3


async def test_orders_gateway_raises_when_the_upstream_is_unreachable() -> None:
    delays: list[float] = []
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(side_effect=[refused() for _ in range(5)])
        async with client(delays) as http:
            with pytest.raises(UpstreamUnavailable, match="ConnectError"):
                await collect(HttpOrdersGateway(http))
    assert len(delays) == 3
    assert route.call_count == 4


async def test_orders_gateway_refuses_an_unexpected_answer() -> None:
    nonsense = httpx.Response(200, json={"items": [{"order_id": "o1"}], "next_cursor": None})
    with mocked(UPSTREAM_URL) as upstream:
        route = upstream.get("/orders").mock(side_effect=[nonsense])
        async with client([]) as http:
            with pytest.raises(UpstreamUnavailable, match="unexpected answer"):
                await collect(HttpOrdersGateway(http))
    assert route.call_count == 1


def _runs(run_id: str, next_cursor: str | None) -> httpx.Response:
    run: dict[str, Any] = {
        "run_id": run_id,
        "agent_id": "summarizer",
        "status": "completed",
        "output": "text",
        "token_usage": 3,
        "error": None,
        "created_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
    }
    return httpx.Response(200, json={"items": [run], "next_cursor": next_cursor})


async def test_agents_gateway_pages_with_a_short_lived_service_token() -> None:
    since = datetime(2026, 1, 1, tzinfo=UTC)
    with mocked(AGENTS_URL) as agents:
        route = agents.get("/api/v1/agents/runs").mock(side_effect=[_runs("r1", "n1"), _runs("r2", None)])
        async with client([], base_url=AGENTS_URL) as http:
            runs = [r.run_id async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(since)]
    assert runs == ["r1", "r2"]
    assert route.call_count == 2
    first, second = (call.request for call in route.calls)
    assert first.url.path == "/api/v1/agents/runs"
    assert first.url.params["since"] == since.isoformat()
    assert "cursor" not in first.url.params
    assert second.url.params["cursor"] == "n1"
    assert second.url.params["since"] == since.isoformat()
    claims = decode_token(CONFIG, first.headers["authorization"].removeprefix("Bearer "))
    assert claims.sub == "service:reporting"
    assert claims.scopes == {"agent:read", "agent:admin"}
    assert claims.expires_at - int(claims.claims["iat"]) == 60


async def test_agents_gateway_retries_a_failing_agents_service() -> None:
    delays: list[float] = []
    with mocked(AGENTS_URL) as agents:
        route = agents.get("/api/v1/agents/runs").mock(
            side_effect=[httpx.Response(502), refused(), _runs("r1", None)]
        )
        async with client(delays, base_url=AGENTS_URL) as http:
            runs = [r.run_id async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(None)]
    assert runs == ["r1"]
    assert len(delays) == 2
    assert route.call_count == 3


async def test_agents_gateway_raises_when_agents_stays_down() -> None:
    with mocked(AGENTS_URL) as agents:
        route = agents.get("/api/v1/agents/runs").mock(side_effect=[httpx.Response(502) for _ in range(5)])
        async with client([], base_url=AGENTS_URL) as http:
            with pytest.raises(UpstreamUnavailable, match="502"):
                [r async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(None)]
    assert route.call_count == 4


async def test_agents_gateway_treats_a_refused_token_as_unavailable() -> None:
    with mocked(AGENTS_URL) as agents:
        route = agents.get("/api/v1/agents/runs").mock(
            side_effect=[httpx.Response(401, json={"detail": "Invalid token"})]
        )
        async with client([], base_url=AGENTS_URL) as http:
            with pytest.raises(UpstreamUnavailable, match="401"):
                [r async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(None)]
    assert route.call_count == 1  # a refused token is not retried
