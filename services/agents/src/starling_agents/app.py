"""`create_app(settings, database=...)`: the agents service, its typed state built once in the lifespan."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx

from starling_agents.events import RunEvents
from starling_agents.gateways import ChatCompletionsGateway
from starling_agents.repository import AgentsStores
from starling_agents.routes import SCOPES, AgentsState, routes
from starling_agents.service import AgentExecutor, AgentsService, RunsService
from starling_agents.settings import AgentsSettings
from starling_agents.workers import RunWorkers
from starling_core.app import ServiceApp
from starling_core.app import create_app as create_service_app
from starling_core.db import Database
from starling_core.http import Sleep, create_http_client
from starling_core.ratelimit import RateLimitBackend

MIGRATIONS = Path(__file__).parent / "migrations"


@asynccontextmanager
async def agents_state(
    settings: AgentsSettings,
    database: Database,
    *,
    llm_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> AsyncIterator[AgentsState]:
    """One process's services on `database`: the built-in agents ensured, the workers running."""
    # Completions are safe to send again (no side effect but cost), so the POST is retried too.
    async with create_http_client(
        timeout=settings.llm_timeout, transport=llm_transport, sleep=sleep, retry_non_idempotent=True
    ) as llm_client:
        executor = AgentExecutor(
            ChatCompletionsGateway(
                llm_client, api_key=settings.llm_api_key, default_base_url=settings.llm_base_url
            )
        )
        stores = AgentsStores(database)
        agents = AgentsService(stores)
        await agents.ensure_builtins()
        events = RunEvents()
        # A scan as often as a lease runs out: a dead process's runs wait at most about twice that.
        workers = RunWorkers(settings.workers, scan_every=settings.run_lease)
        runs = RunsService(stores, executor, events, workers.enqueue, lease=settings.run_lease)
        workers.start(runs.process, runs.claimable)
        try:
            yield {
                "agents": agents,
                "runs": runs,
                "run_events": events,
                "workers": workers,
                "max_input_chars": settings.max_input_chars,
                "events_poll": settings.events_poll,
            }
        finally:
            await workers.stop()


def create_app(
    settings: AgentsSettings | None = None,
    *,
    database: Database | None = None,
    llm_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    rate_limit_backend: RateLimitBackend | None = None,
) -> ServiceApp:
    """The agents app, on `database` if given (the caller's: not migrated, not disposed).

    The LLM transport, `sleep` (retry backoff) and the rate limiter are seams for tests.
    """
    agents_settings = settings if settings is not None else AgentsSettings()

    def lifespan(database: Database) -> AbstractAsyncContextManager[AgentsState]:
        return agents_state(agents_settings, database, llm_transport=llm_transport, sleep=sleep)

    return create_service_app(
        agents_settings,
        routes=routes,
        scopes=SCOPES,
        lifespan=lifespan,
        migrations=MIGRATIONS,
        database=database,
        rate_limit_backend=rate_limit_backend,
    )
