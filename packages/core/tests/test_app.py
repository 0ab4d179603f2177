"""The app factory's standard behaviour: errors, request ids, body limit, health."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import MappingProxyType

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect
from sqlalchemy.pool import QueuePool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from starling_core.app import create_app
from starling_core.db import Database
from starling_core.errors import DomainError

from .itemsapp import ItemSettings, build_app


async def test_unknown_route_is_json_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


@pytest.mark.parametrize("path", ["/health/", "/api/items/"])
async def test_a_trailing_slash_is_json_404_never_a_redirect_to_the_callers_host(
    client: httpx.AsyncClient, path: str
) -> None:
    # Starlette's router redirected to the other spelling, on whatever host the request named: a
    # `Host` header chose where a shared cache or a client went next.
    response = await client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    assert "location" not in response.headers


async def test_wrong_method_is_json_405_naming_every_method_of_the_path(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/items")
    assert response.status_code == 405
    assert "detail" in response.json()
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "POST"}


async def test_unhandled_error_is_json_500_without_traceback(app: Starlette) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/boom")
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error"}
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"]


async def test_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/health")
    second = await client.get("/health")
    assert first.headers["x-request-id"] != second.headers["x-request-id"]
    assert len(first.headers["x-request-id"]) >= 16


async def test_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/items", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert response.headers["x-request-id"] != "x" * 500


async def test_error_responses_carry_the_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/nowhere", headers={"X-Request-ID": "trace-404"})
    assert response.headers["x-request-id"] == "trace-404"


async def test_oversized_declared_body_gets_413(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/items", content=b"x" * (1024 * 1024 + 1))
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_oversized_streamed_body_gets_413(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"y" * 65536

    response = await client.post("/api/items", content=chunks())
    assert response.status_code == 413
    assert "detail" in response.json()


async def test_invalid_body_gets_422_in_pydantic_shape(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/items", json={"name": ""})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "name"]
    assert error["type"] == "string_too_short"
    assert error["msg"]


async def test_invalid_query_gets_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/items", params={"limit": "0"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


@pytest.mark.parametrize("body", [b"{not json", b"", b"\xff\xfe", b"[" * 100_000])
async def test_malformed_json_gets_400_with_detail(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post("/api/items", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["detail"]


async def test_operation_scopes_answer_401_then_403(
    client: httpx.AsyncClient, auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    anonymous = await client.get("/api/items/count")
    assert anonymous.status_code == 401
    assert "Authorization" in anonymous.json()["detail"]
    forbidden = await auth_client.get("/api/items/count")
    assert forbidden.status_code == 403
    assert "items:admin" in forbidden.json()["detail"]
    allowed = await admin_client.get("/api/items/count")
    assert allowed.status_code == 200


async def test_health_reports_database_ok(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "healthy", "service": "items", "checks": {"database": "ok"}}


async def test_health_is_503_when_database_is_unreachable() -> None:
    # Port 1 on loopback refuses at once: an unreachable PostgreSQL server.
    settings = ItemSettings(database_url="postgresql+asyncpg://u:p@127.0.0.1:1/none")
    app = build_app(settings)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        response = await client.get("/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"].startswith("error")


async def test_lifespan_opens_and_disposes_its_own_database(tmp_path: Path) -> None:
    seen: list[Database] = []

    @asynccontextmanager
    async def lifespan(database: Database) -> AsyncIterator[dict[str, Database]]:
        seen.append(database)
        yield {"database": database}

    app = create_app(
        ItemSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/own.db"), routes=[], lifespan=lifespan
    )
    async with LifespanManager(app):
        (database,) = seen
        await database.ping()
        assert database.engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    pool = database.engine.pool
    assert isinstance(pool, QueuePool)
    # disposed: a new pool replaced the one the app used, and nothing was left checked out
    assert pool.checkedout() == 0


async def test_an_app_on_its_own_database_freezes_what_its_start_up_allocated(tmp_path: Path) -> None:
    # A server's process: the collector no longer walks the imports, models and app on every full pass.
    settings = ItemSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/own.db")
    gc.unfreeze()
    try:
        async with LifespanManager(create_app(settings, routes=[])):
            frozen = gc.get_freeze_count()
    finally:
        gc.unfreeze()

    assert frozen > 0


async def test_an_app_on_a_database_handed_in_leaves_the_collector_alone(tmp_path: Path) -> None:
    # The test kit hands one in: a test process builds hundreds of apps and must collect them.
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/given.db")
    settings = ItemSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/never-used.db")
    gc.unfreeze()
    try:
        async with LifespanManager(create_app(settings, routes=[], database=database)):
            frozen = gc.get_freeze_count()
    finally:
        await database.dispose()

    assert frozen == 0


async def test_a_database_handed_in_is_neither_migrated_nor_disposed(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/given.db")
    disposed: list[object] = []
    database.dispose = lambda: disposed.append(True)  # type: ignore[method-assign,assignment,return-value]
    settings = ItemSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/never-used.db")
    try:
        async with (
            LifespanManager(build_app(settings, database=database)) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as c,
        ):
            assert (await c.get("/health")).status_code == 200
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda sync: inspect(sync).get_table_names())
    finally:
        await Database.dispose(database)
    assert tables == []  # not migrated: its owner manages the schema
    assert disposed == []


class Throttled(DomainError):
    status_code = 429
    detail_text = "Slow down"
    headers = MappingProxyType({"Retry-After": "7"})


async def test_a_domain_error_is_answered_with_its_status_detail_and_headers() -> None:
    async def refuse(request: Request) -> None:
        raise Throttled

    app = create_app(
        ItemSettings(), database=Database.from_url("sqlite+aiosqlite://"), routes=[Route("/x", refuse)]
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/x")
    assert (response.status_code, response.json()) == (429, {"detail": "Slow down"})
    assert response.headers["Retry-After"] == "7"


async def test_a_domain_error_raised_by_a_route_needs_no_mapping(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/items/by-name/nothing")
    assert (response.status_code, response.json()) == (404, {"detail": "Item nothing not found"})
