"""`create_app(settings)`: the reporting service, its services and gateways built once in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from starling_core.app import ServiceApp
from starling_core.app import create_app as create_service_app
from starling_core.db import Database
from starling_core.events import Consumer, Events
from starling_core.http import Sleep, create_http_client
from starling_core.tokens import JWTConfig
from starling_reporting.gateways import HttpAgentRunsGateway, HttpOrdersGateway, service_token
from starling_reporting.repository import DatabaseOrdersPublisher, ReportingStores
from starling_reporting.routes import SCOPES, ReportingState, routes
from starling_reporting.schemas import ORDER_PLACED, RUN_FINISHED
from starling_reporting.service import (
    AgentUsageService,
    ExtractOrdersUseCase,
    OrdersService,
    run_periodically,
)
from starling_reporting.settings import ReportingSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: ReportingSettings | None = None,
    *,
    database: Database | None = None,
    orders_transport: httpx.AsyncBaseTransport | None = None,
    agents_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
    events: Events | None = None,
) -> ServiceApp:
    """The reporting app; the transports and `sleep` (retry backoff) are seams for tests. `events`
    (default: `Events(settings)`, the broker the settings name, if any) runs the consumer group
    `reporting`: orders from `orders`, finished runs from `agents.runs`; and core's `reporting-tokens`:
    revoked tokens from `users.users`."""
    settings = settings or ReportingSettings()
    jwt_config = JWTConfig.from_settings(settings)
    app_events = events or Events(settings)

    @asynccontextmanager
    async def lifespan(app_database: Database) -> AsyncIterator[ReportingState]:
        stores = ReportingStores(app_database)
        async with contextlib.AsyncExitStack() as stack:
            agents_client = await stack.enter_async_context(
                create_http_client(settings.agents_url, transport=agents_transport, sleep=sleep)
            )
            extract_orders: ExtractOrdersUseCase | None = None
            if settings.upstream_url:
                orders_client = await stack.enter_async_context(
                    create_http_client(settings.upstream_url, transport=orders_transport, sleep=sleep)
                )
                extract_orders = ExtractOrdersUseCase(
                    HttpOrdersGateway(orders_client, page_size=settings.upstream_page_size),
                    DatabaseOrdersPublisher(app_database),
                )
            extraction_ran = asyncio.Event()
            if extract_orders is not None and settings.extraction_interval is not None:
                task = asyncio.create_task(
                    run_periodically(extract_orders, settings.extraction_interval, extraction_ran),
                    name="reporting-periodic-extraction",
                )
                # Unwound first: the task stops before the clients it uses are closed.
                stack.push_async_callback(_cancel, task)
            orders = OrdersService(stores)
            agent_usage = AgentUsageService(
                stores, HttpAgentRunsGateway(agents_client, service_token(jwt_config))
            )
            consumer = (
                Consumer(stores, "reporting")
                .on(ORDER_PLACED, orders.place_from_event)
                .on(RUN_FINISHED, agent_usage.record_finished)
            )
            await stack.enter_async_context(app_events.consuming(consumer))
            yield {
                "orders": orders,
                "extract_orders": extract_orders,
                "extraction_ran": extraction_ran,
                "agent_usage": agent_usage,
            }

    return create_service_app(
        settings,
        routes=routes,
        scopes=SCOPES,
        lifespan=lifespan,
        migrations=MIGRATIONS,
        database=database,
        events=app_events,
        refuse_revoked_tokens=True,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
