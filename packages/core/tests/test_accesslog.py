"""One access line per request: request id, method, route template, status, duration, client."""

from __future__ import annotations

import logging

import httpx
import pytest
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette

from starling_core.logs import ACCESS_LOGGER


def access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == ACCESS_LOGGER]


async def test_each_request_is_one_line_naming_its_route_template(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        response = await client.get("/api/items/7?token=secret-value", headers={"X-Request-ID": "req-7"})

    (record,) = access_records(caplog)
    fields = {key: vars(record)[key] for key in ("service", "method", "route", "status", "client")}
    assert fields == {
        "service": "items",
        "method": "GET",
        "route": "/api/items/{item_id:int}",
        "status": response.status_code,
        "client": "127.0.0.1",
    }
    assert vars(record)["duration_ms"] >= 0
    assert record.getMessage().startswith("GET /api/items/{item_id:int} 404 ")
    assert "secret-value" not in record.getMessage()


async def test_the_line_is_written_with_the_requests_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str | None] = []

    class Spy(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            from starling_core.requestid import request_id_var

            seen.append(request_id_var.get())
            return True

    spy = Spy()
    logging.getLogger(ACCESS_LOGGER).addFilter(spy)
    try:
        with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
            await client.get("/api/items", headers={"X-Request-ID": "req-abc"})
    finally:
        logging.getLogger(ACCESS_LOGGER).removeFilter(spy)

    assert seen == ["req-abc"]


async def test_refusals_before_routing_and_unknown_paths_are_logged_too(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        await client.post(
            "/api/items", content=b"x" * (2 * 1024 * 1024), headers={"content-type": "application/json"}
        )
        await client.get("/no/such/thing?token=abc")

    assert [(vars(r)["route"], vars(r)["status"]) for r in access_records(caplog)] == [
        ("/api/items", 413),
        ("<unmatched>", 404),
    ]


async def test_an_unhandled_error_is_logged_as_the_500_it_became(
    app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with LifespanManager(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
            assert (await client.get("/boom")).status_code == 500

    assert [(vars(r)["route"], vars(r)["status"]) for r in access_records(caplog)] == [("/boom", 500)]


async def test_successful_probes_are_debug_lines(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        for probe in ("/health", "/livez", "/metrics"):
            assert (await client.get(probe)).status_code == 200

    assert access_records(caplog) == []
