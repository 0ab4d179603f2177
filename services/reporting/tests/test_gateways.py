"""The HTTP gateways against httpx.MockTransport: pagination, retries, an upstream that stays down."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from starling_core.http import create_http_client
from starling_core.tokens import JWTConfig, decode_token
from starling_reporting.gateways import (
    HttpAgentRunsGateway,
    HttpOrdersGateway,
    OrdersPage,
    UpstreamUnavailable,
    service_token,
)

from .fakes import order_json

CONFIG = JWTConfig(
    "gateway-test-secret-0123456789abcdef", "gateway-test-secret-0123456789abcdef", "starling-users"
)


class Upstream:
    """A mock orders API: pages by cursor, optionally failing the first `failures` requests with 503."""

    def __init__(
        self, pages: dict[str | None, tuple[list[dict[str, Any]], str | None]], failures: int = 0
    ) -> None:
        self.pages = pages
        self.failures = failures
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.failures:
            self.failures -= 1
            return httpx.Response(503)
        items, next_cursor = self.pages[request.url.params.get("cursor")]
        return httpx.Response(200, json={"items": items, "next_cursor": next_cursor})


def client(handler: Any, delays: list[float], base_url: str = "http://upstream/v2") -> httpx.AsyncClient:
    async def record(delay: float) -> None:
        delays.append(delay)

    return create_http_client(base_url, transport=httpx.MockTransport(handler), sleep=record)


async def collect(gateway: HttpOrdersGateway, cursor: str | None = None) -> list[OrdersPage]:
    return [page async for page in gateway.pages(cursor)]


PAGES = {
    None: ([order_json("o1", ("p", "P", 1)), order_json("o2", ("p", "P", 1))], "c1"),
    "c1": ([order_json("o3", ("p", "P", 1))], None),
}


async def test_orders_gateway_follows_next_cursor_until_null() -> None:
    upstream = Upstream(PAGES)
    async with client(upstream, []) as http:
        pages = await collect(HttpOrdersGateway(http, page_size=2))
    assert [[o.order_id for o in page.orders] for page in pages] == [["o1", "o2"], ["o3"]]
    assert [page.resume_cursor for page in pages] == ["c1", "c1"]
    assert [str(r.url) for r in upstream.requests] == [
        "http://upstream/v2/orders?limit=2",
        "http://upstream/v2/orders?limit=2&cursor=c1",
    ]


async def test_orders_gateway_streams_orders_from_a_cursor() -> None:
    async with client(Upstream(PAGES), []) as http:
        orders = [o.order_id async for o in HttpOrdersGateway(http).orders("c1")]
    assert orders == ["o3"]


async def test_orders_gateway_retries_a_failing_upstream() -> None:
    delays: list[float] = []
    upstream = Upstream(PAGES, failures=2)
    async with client(upstream, delays) as http:
        pages = await collect(HttpOrdersGateway(http))
    assert len(pages) == 2
    assert len(delays) == 2
    assert len(upstream.requests) == 4


async def test_orders_gateway_raises_when_the_upstream_stays_down() -> None:
    delays: list[float] = []
    upstream = Upstream(PAGES, failures=100)
    async with client(upstream, delays) as http:
        with pytest.raises(UpstreamUnavailable, match="503"):
            await collect(HttpOrdersGateway(http))
    assert len(upstream.requests) == 4  # the first try and three retries


async def test_orders_gateway_raises_when_the_upstream_is_unreachable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    delays: list[float] = []
    async with client(refuse, delays) as http:
        with pytest.raises(UpstreamUnavailable, match="ConnectError"):
            await collect(HttpOrdersGateway(http))
    assert len(delays) == 3


async def test_orders_gateway_refuses_an_unexpected_answer() -> None:
    def nonsense(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [{"order_id": "o1"}], "next_cursor": None})

    async with client(nonsense, []) as http:
        with pytest.raises(UpstreamUnavailable, match="unexpected answer"):
            await collect(HttpOrdersGateway(http))


def _run(run_id: str) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "agent_id": "summarizer",
        "status": "completed",
        "output": "text",
        "token_usage": 3,
        "error": None,
        "created_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
    }


async def test_agents_gateway_pages_with_a_short_lived_service_token() -> None:
    seen: list[httpx.Request] = []

    def agents(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.params.get("cursor") is None:
            return httpx.Response(200, json={"items": [_run("r1")], "next_cursor": "n1"})
        return httpx.Response(200, json={"items": [_run("r2")], "next_cursor": None})

    since = datetime(2026, 1, 1, tzinfo=UTC)
    async with client(agents, [], base_url="http://agents") as http:
        runs = [r.run_id async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(since)]
    assert runs == ["r1", "r2"]
    assert seen[0].url.path == "/api/v1/agents/runs"
    assert seen[0].url.params["since"] == since.isoformat()
    assert seen[1].url.params["cursor"] == "n1"
    claims = decode_token(CONFIG, seen[0].headers["authorization"].removeprefix("Bearer "))
    assert claims.sub == "service:reporting"
    assert claims.scopes == {"agent:read", "agent:admin"}
    assert claims.expires_at - claims.claims["iat"] == 60


async def test_agents_gateway_raises_when_agents_stays_down() -> None:
    requests: list[httpx.Request] = []

    def down(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(502)

    async with client(down, [], base_url="http://agents") as http:
        with pytest.raises(UpstreamUnavailable, match="502"):
            [r async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(None)]
    assert len(requests) == 4


async def test_agents_gateway_treats_a_refused_token_as_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"detail": "Invalid token"})

    async with client(refuse, [], base_url="http://agents") as http:
        with pytest.raises(UpstreamUnavailable, match="401"):
            [r async for r in HttpAgentRunsGateway(http, service_token(CONFIG)).runs(None)]
