"""`create_app(settings)`: the reporting service, its gateways built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette

from starling_core.app import create_app as create_service_app
from starling_core.db import Database
from starling_core.http import Sleep, create_http_client
from starling_core.migrations import upgrade
from starling_core.tokens import JWTConfig
from starling_reporting import service
from starling_reporting.gateways import HttpAgentRunsGateway, HttpOrdersGateway, service_token
from starling_reporting.routes import routes
from starling_reporting.settings import ReportingSettings

MIGRATIONS = Path(__file__).parent / "migrations"


async def migrate(database: Database) -> None:
    await upgrade(database, MIGRATIONS)


def create_app(
    settings: ReportingSettings,
    *,
    orders_transport: httpx.AsyncBaseTransport | None = None,
    agents_transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> Starlette:
    """The reporting app; the transports and `sleep` (retry backoff) are seams for tests."""
    jwt_config = JWTConfig.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        database: Database = app.state.database
        async with contextlib.AsyncExitStack() as stack:
            agents_client = await stack.enter_async_context(
                create_http_client(settings.agents_url, transport=agents_transport, sleep=sleep)
            )
            app.state.agents_gateway = HttpAgentRunsGateway(agents_client, service_token(jwt_config))
            app.state.extract_orders = None
            if settings.upstream_url:
                orders_client = await stack.enter_async_context(
                    create_http_client(settings.upstream_url, transport=orders_transport, sleep=sleep)
                )
                app.state.extract_orders = service.ExtractOrdersUseCase(
                    HttpOrdersGateway(orders_client, page_size=settings.upstream_page_size),
                    service.DatabaseOrdersPublisher(database),
                )
            app.state.extraction_ran = asyncio.Event()
            task: asyncio.Task[None] | None = None
            if app.state.extract_orders is not None and settings.extraction_interval is not None:
                task = asyncio.create_task(
                    service.run_periodically(
                        app.state.extract_orders, settings.extraction_interval, app.state.extraction_ran
                    ),
                    name="reporting-periodic-extraction",
                )
            try:
                yield
            finally:
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task

    return create_service_app(settings, routes=routes, lifespan=lifespan, migrate=migrate)
