"""`create_app(settings)`: the agents service, its LLM client, event hub and workers built in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette

from starling_agents.events import RunEvents
from starling_agents.gateways import ChatCompletionsGateway
from starling_agents.repository import AgentRepository
from starling_agents.routes import routes
from starling_agents.service import AgentExecutor, AgentsService, RunsService
from starling_agents.settings import AgentsSettings
from starling_agents.workers import RunWorkers
from starling_core.app import create_app as create_service_app
from starling_core.db import Database
from starling_core.http import Sleep, create_http_client
from starling_core.migrations import upgrade
from starling_core.ratelimit import RateLimitBackend

MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(database: Database) -> None:
    await upgrade(database, MIGRATIONS)


def create_app(
    settings: AgentsSettings | None = None,
    *,
    llm_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    rate_limit_backend: RateLimitBackend | None = None,
) -> Starlette:
    """The agents app; the LLM transport, `sleep` (retry backoff) and the rate limiter are seams for tests."""
    settings = settings if settings is not None else AgentsSettings()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database: Database = app.state.database
        # Completions are safe to send again (no side effect but cost), so the POST is retried too.
        async with create_http_client(
            timeout=settings.llm_timeout, transport=llm_transport, sleep=sleep, retry_non_idempotent=True
        ) as llm_client:
            executor = AgentExecutor(
                ChatCompletionsGateway(
                    llm_client, api_key=settings.llm_api_key, default_base_url=settings.llm_base_url
                )
            )
            events = RunEvents()
            # A scan as often as a lease runs out: a dead process's runs wait at most about twice that.
            workers = RunWorkers(settings.workers, scan_every=settings.run_lease)
            app.state.run_events = events
            app.state.workers = workers
            async with database.transaction() as session:
                await AgentsService(AgentRepository(session)).ensure_builtins()
            runs = RunsService(database, executor, events, workers.enqueue, lease=settings.run_lease)
            app.state.runs = runs
            workers.start(runs.process, runs.claimable)
            try:
                yield
            finally:
                await workers.stop()

    return create_service_app(
        settings, routes=routes, lifespan=lifespan, migrate=migrate, rate_limit_backend=rate_limit_backend
    )
