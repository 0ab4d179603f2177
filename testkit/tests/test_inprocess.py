"""`in_process` carries a service's real outbound client to another app's real routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.http import create_http_client
from starling_testkit import in_process


def callee() -> Starlette:
    calls: list[str] = []

    async def flaky(request: Request) -> JSONResponse:
        calls.append(request.url.path)
        if len(calls) == 1:
            return JSONResponse({"detail": "try again"}, status_code=503)
        return JSONResponse({"started": request.app.state.started, "calls": len(calls)})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        app.state.started = True
        yield

    return Starlette(routes=[Route("/runs", flaky)], lifespan=lifespan)


async def test_calls_reach_the_other_app_with_its_lifespan_and_retries() -> None:
    async def no_wait(seconds: float) -> None:
        pass

    async with (
        in_process(callee()) as transport,
        create_http_client("http://agents", transport=transport, sleep=no_wait) as client,
    ):
        response = await client.get("/runs")
    assert response.status_code == 200
    assert response.json() == {"started": True, "calls": 2}  # the 503 was retried by the caller's client
