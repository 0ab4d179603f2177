"""Thin endpoints: validated input in, a service called, the answer shaped."""

from __future__ import annotations

import asyncio
from typing import TypedDict

from pydantic import TypeAdapter
from starlette.requests import Request
from starlette.routing import Route

from starling_core.auth import Scopes
from starling_core.operations import operation
from starling_reporting.errors import ExtractionNotConfigured
from starling_reporting.schemas import (
    AgentUsageOut,
    ExtractionOut,
    IngestOut,
    OrdersIn,
    TimeRange,
    TopProductOut,
    TopProductsQuery,
)
from starling_reporting.service import AgentUsageService, ExtractOrdersUseCase, OrdersService

REPORTS_READ = "reports:read"
REPORTS_WRITE = "reports:write"
SCOPES = Scopes(user=(REPORTS_READ,), admin=(REPORTS_WRITE,))


# Each reads the service's rows in one call, where a loop validated them one by one.
_TOP_PRODUCTS = TypeAdapter(list[TopProductOut])
_AGENT_USAGE = TypeAdapter(list[AgentUsageOut])


class ReportingState(TypedDict):
    """What the routes use, built once in the app's lifespan: each request's `request.state`."""

    orders: OrdersService
    # None while no upstream orders API is configured.
    extract_orders: ExtractOrdersUseCase | None
    # Set after each periodic extraction run, whatever its outcome.
    extraction_ran: asyncio.Event
    agent_usage: AgentUsageService


@operation(
    body=OrdersIn,
    response=IngestOut,
    status_code=202,
    errors=[401, 403, 422],
    scopes=[REPORTS_WRITE],
    tags=["orders"],
)
async def post_orders(request: Request[ReportingState], body: OrdersIn) -> IngestOut:
    """Ingest a batch of orders, idempotently by order id."""
    result = await request.state["orders"].ingest(body.orders)
    return IngestOut.model_validate(result, from_attributes=True)


@operation(
    query=TopProductsQuery,
    response=list[TopProductOut],
    errors=[401, 403, 422, 503],
    scopes=[REPORTS_READ],
    tags=["reports"],
)
async def get_top_products(request: Request[ReportingState], query: TopProductsQuery) -> list[TopProductOut]:
    """The most bought products by units, ties by title."""
    ranking = await request.state["orders"].top_products(query)
    return _TOP_PRODUCTS.validate_python(ranking, from_attributes=True)


@operation(response=ExtractionOut, errors=[401, 403, 503], scopes=[REPORTS_WRITE], tags=["orders"])
async def post_extraction(request: Request[ReportingState]) -> ExtractionOut:
    """Read new orders from the upstream orders API, from the last checkpoint on."""
    extract = request.state["extract_orders"]
    if extract is None:
        raise ExtractionNotConfigured()
    return ExtractionOut.model_validate(await extract(), from_attributes=True)


@operation(
    query=TimeRange,
    response=list[AgentUsageOut],
    errors=[401, 403, 422, 503],
    scopes=[REPORTS_READ],
    tags=["reports"],
)
async def get_agent_usage(request: Request[ReportingState], query: TimeRange) -> list[AgentUsageOut]:
    """Runs and token usage per agent, from the agents service (or what was stored from it)."""
    usage = await request.state["agent_usage"].usage(query)
    return _AGENT_USAGE.validate_python(usage, from_attributes=True)


routes = [
    Route("/api/v1/orders", post_orders, methods=["POST"]),
    Route("/top-products", get_top_products, methods=["GET"]),
    Route("/api/v1/extractions", post_extraction, methods=["POST"]),
    Route("/api/v1/reports/agent-usage", get_agent_usage, methods=["GET"]),
]
