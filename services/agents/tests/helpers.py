"""Small helpers the agents tests share: apps with other settings, clients, waiting for runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from asgi_lifespan import LifespanManager
from starlette.applications import Starlette
from starlette.types import ASGIApp
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from starling_agents.app import create_app
from starling_agents.followers import TASK_PREFIX
from starling_agents.settings import AgentsSettings
from starling_core.db import Database
from starling_core.events import Events
from starling_core.ratelimit import RateLimitBackend
from starling_core.settings import ServiceSettings

from .asgi_ws import websocket_connect

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
    database: Database,
    *,
    llm_transport: httpx.AsyncBaseTransport | None = None,
    rate_limit_backend: RateLimitBackend | None = None,
    events: Events | None = None,
    **overrides: Any,
) -> Starlette:
    """The app with `overrides` on the kit's settings, on `database` (the kit's `app_database`, which
    writes through the test's transaction; two apps given one stand for two processes)."""
    return create_app(
        agents_settings(settings, **overrides),
        database=database,
        llm_transport=llm_transport,
        sleep=no_sleep,
        rate_limit_backend=rate_limit_backend,
        events=events,
    )


def agents_settings(settings: ServiceSettings, **overrides: Any) -> AgentsSettings:
    """The kit's settings (an `AgentsSettings`, read from `create_app`'s annotation) with `overrides`."""
    assert isinstance(settings, AgentsSettings)
    return settings.model_copy(update=overrides)


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


async def wait_until_finished(client: httpx.AsyncClient, served: ASGIApp, run_id: str) -> dict[str, Any]:
    """The run once it ended, as `client` reads it: its events are followed until `done`, never a timer.

    Every wait for an event is bounded, so a stuck worker fails the test instead of hanging the suite.
    """
    token = client.headers["Authorization"].removeprefix("Bearer ")
    async with websocket_connect(served, f"/api/v1/agents/runs/{run_id}/events?token={token}") as ws:
        assert await ws.accepted()
        events = await ws.receive_until_closed()
    assert events[-1]["type"] == "done", events
    response = await client.get(f"/api/v1/agents/runs/{run_id}")
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    assert run["status"] in FINISHED
    return run


def follower_tasks(run_id: str) -> list[asyncio.Task[object]]:
    """The tasks following `run_id` in this event loop (in-process apps and `live_server` share it)."""
    return [task for task in asyncio.all_tasks() if task.get_name() == f"{TASK_PREFIX}{run_id}"]


# --- over a real socket (`live_server`) ------------------------------------------------------------


def live_events_url(base_url: str, run_id: str, token: str | None = None) -> str:
    """The run's events on `live_server`, with the token in the URL or, without one, nowhere in it."""
    query = f"?token={token}" if token else ""
    return f"{base_url.replace('http://', 'ws://')}/api/v1/agents/runs/{run_id}/events{query}"


def bearer(token: str) -> list[Subprotocol]:
    """The subprotocols that carry `token` in the handshake's headers, not in its URL."""
    return [Subprotocol("bearer"), Subprotocol(token)]


async def background_run(base_url: str, token: str) -> str:
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as client:
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        response = await client.post("/api/v1/agents/run", json=body)
    assert response.status_code == 202
    run_id: str = response.json()["run_id"]
    return run_id


@asynccontextmanager
async def following_a_background_run(
    base_url: str, token: str
) -> AsyncIterator[tuple[str, ClientConnection]]:
    """A new background run's id and a WebSocket following it, the token in the `bearer` subprotocol."""
    run_id = await background_run(base_url, token)
    async with connect(live_events_url(base_url, run_id), subprotocols=bearer(token)) as websocket:
        assert websocket.subprotocol == "bearer"  # what a browser insists on
        yield run_id, websocket
