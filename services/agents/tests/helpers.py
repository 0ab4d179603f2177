"""Small helpers the agents tests share: apps with other settings, clients, waiting for runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.applications import Starlette
from starlette.types import ASGIApp

from starling_agents.app import create_app
from starling_agents.settings import AgentsSettings
from starling_core.db import Database
from starling_core.ratelimit import RateLimitBackend
from starling_core.settings import ServiceSettings

FINISHED = ("completed", "failed", "cancelled")
SAMPLE_TEXT = (
    "Starling runs agents for its users. "
    "The weather was cold on Tuesday. "
    "Agents summarize text and classify text for users. "
    "Lunch was a sandwich. "
    "Users read the summaries that the agents write."
)


def build_app(
    settings: ServiceSettings,
    connection: AsyncConnection,
    *,
    llm_transport: httpx.AsyncBaseTransport | None = None,
    rate_limit_backend: RateLimitBackend | None = None,
    **overrides: Any,
) -> Starlette:
    """The app with `overrides` on the kit's settings, writing through the test's transaction."""
    assert isinstance(settings, AgentsSettings)
    app = create_app(
        settings.model_copy(update=overrides),
        llm_transport=llm_transport,
        sleep=no_sleep,
        rate_limit_backend=rate_limit_backend,
    )
    app.state.database = Database.for_connection(connection)
    return app


async def no_sleep(seconds: float) -> None:
    return None


@asynccontextmanager
async def started(app: Starlette) -> AsyncIterator[ASGIApp]:
    async with LifespanManager(app) as manager:
        yield manager.app


def client_for(app: ASGIApp, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", headers=headers
    )


async def wait_until_finished(client: httpx.AsyncClient, app: Starlette, run_id: str) -> dict[str, Any]:
    """Poll the run, waking on the workers' `processed` event, never on a timer."""
    processed: asyncio.Event = app.state.workers.processed
    for _ in range(50):
        processed.clear()
        response = await client.get(f"/api/v1/agents/runs/{run_id}")
        assert response.status_code == 200, response.text
        run: dict[str, Any] = response.json()
        if run["status"] in FINISHED:
            return run
        # Bounded so that a stuck worker fails the test instead of hanging the suite.
        await asyncio.wait_for(processed.wait(), timeout=10)
    raise AssertionError(f"run {run_id} did not finish")
