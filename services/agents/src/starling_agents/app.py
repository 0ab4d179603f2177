"""`create_app(settings, database=...)`: the agents service, its typed state built once in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path

import httpx

from starling_agents.events import RunEvents
from starling_agents.followers import Followers
from starling_agents.gateways import ChatCompletionsGateway
from starling_agents.outbound import DEFAULT_KEY, HostRule, LLMKey, OutboundPolicy
from starling_agents.redaction import redact_tokens_in_logs
from starling_agents.repository import AgentsStores
from starling_agents.routes import SCOPES, AgentsState, routes
from starling_agents.schemas import USER_DELETED
from starling_agents.service import AgentExecutor, AgentsService, RunsService
from starling_agents.settings import AgentsSettings
from starling_agents.workers import RunWorkers
from starling_core.app import ServiceApp, default_rate_limit_backend
from starling_core.app import create_app as create_service_app
from starling_core.db import Database, is_sqlite
from starling_core.events import Consumer, Events
from starling_core.http import Sleep, create_http_client
from starling_core.ratelimit import MemoryRateLimitBackend, RateLimitBackend, parse_rate

MIGRATIONS = Path(__file__).parent / "migrations"


def outbound_policy(settings: AgentsSettings) -> OutboundPolicy:
    """Where llm agents may call and with which keys; `STARLING_AGENTS_LLM_API_KEY` is the key named
    `default`, bound to the host and port of `STARLING_AGENTS_LLM_BASE_URL`."""
    keys = dict(settings.llm_keys)
    if settings.llm_api_key is not None and settings.llm_base_url:
        host = str(HostRule.of(httpx.URL(settings.llm_base_url)))
        keys[DEFAULT_KEY] = LLMKey(key=settings.llm_api_key, host=host)
    return OutboundPolicy(
        allowed_hosts=settings.llm_allowed_hosts, keys=keys, default_base_url=settings.llm_base_url
    )


@asynccontextmanager
async def agents_state(
    settings: AgentsSettings,
    database: Database,
    *,
    llm_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    rate_limit_backend: RateLimitBackend | None = None,
    events: Events | None = None,
) -> AsyncIterator[AgentsState]:
    """One process's services on `database`: the built-in agents ensured, the workers running, and with
    `events`, the consumer of the users service's events (group `agents`) running.

    `rate_limit_backend` counts the WebSockets' hits; by default, the one core's middleware uses.
    """
    redact_tokens_in_logs()  # again: the server may have configured its logging after the app was made
    outbound = outbound_policy(settings)
    # Completions are safe to send again (no side effect but cost), so the POST is retried too.
    async with create_http_client(
        timeout=settings.llm_timeout, transport=llm_transport, sleep=sleep, retry_non_idempotent=True
    ) as llm_client:
        executor = AgentExecutor(ChatCompletionsGateway(llm_client, outbound))
        stores = AgentsStores(database)
        agents = AgentsService(stores, outbound)
        await agents.ensure_builtins()
        run_events = RunEvents()
        # A scan as often as a lease runs out: a dead process's runs wait at most about twice that.
        workers = RunWorkers(settings.workers, scan_every=settings.run_lease)
        runs = RunsService(stores, executor, run_events, workers.enqueue, lease=settings.run_lease)
        followers = Followers(
            rate_limit_backend or default_rate_limit_backend(settings, database),
            parse_rate(settings.rate_limit),
            poll=settings.events_poll,
            idle_timeout=settings.events_idle_timeout,
        )
        users = Consumer(stores, "agents").on(USER_DELETED, runs.user_deleted)
        workers.start(runs.process, runs.claimable)
        try:
            async with events.consuming(users) if events is not None else contextlib.nullcontext():
                yield {
                    "agents": agents,
                    "runs": runs,
                    "run_events": run_events,
                    "workers": workers,
                    "max_input_chars": settings.max_input_chars,
                    "followers": followers,
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
    events: Events | None = None,
) -> ServiceApp:
    """The agents app, on `database` if given (the caller's: not migrated, not disposed).

    The LLM transport, `sleep` (retry backoff) and the rate limiter are seams for tests. `events`
    (default: `Events(settings)`, the broker the settings name, if any) relays the outbox (`run.finished`)
    and runs the consumer of `users.users`.
    """
    agents_settings = settings if settings is not None else AgentsSettings()
    app_events = events or Events(agents_settings)
    redact_tokens_in_logs()
    # A run's WebSocket counts against the same limit as the /api/ routes. Counts in memory are one
    # count only in one backend object, so that one is made here and handed to core's middleware too;
    # counts in the database are one count in any backend on it, so the lifespan makes its own there.
    if rate_limit_backend is None and _counts_in_memory(agents_settings):
        rate_limit_backend = MemoryRateLimitBackend()

    def lifespan(database: Database) -> AbstractAsyncContextManager[AgentsState]:
        return agents_state(
            agents_settings,
            database,
            llm_transport=llm_transport,
            sleep=sleep,
            rate_limit_backend=rate_limit_backend,
            events=app_events,
        )

    return create_service_app(
        agents_settings,
        routes=routes,
        scopes=SCOPES,
        lifespan=lifespan,
        migrations=MIGRATIONS,
        database=database,
        rate_limit_backend=rate_limit_backend,
        events=app_events,
        refuse_revoked_tokens=True,
    )


def _counts_in_memory(settings: AgentsSettings) -> bool:
    # core's `default_rate_limit_backend` chooses so: "auto" is memory on SQLite, the database elsewhere
    choice = settings.rate_limit_backend
    return choice == "memory" or (choice == "auto" and is_sqlite(settings.database_url))
