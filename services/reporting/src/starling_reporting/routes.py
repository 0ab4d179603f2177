"""Thin endpoints: validated input in, a use case called, the answer shaped."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.routing import Route

from starling_core.auth import REPORTS_READ, REPORTS_WRITE
from starling_core.operations import operation
from starling_reporting import service
from starling_reporting.gateways import UpstreamUnavailable
from starling_reporting.schemas import (
    AgentUsageOut,
    ExtractionOut,
    IngestOut,
    OrdersIn,
    TimeRange,
    TopProductOut,
    TopProductsQuery,
)

NOT_CONFIGURED = "Extraction is not configured: set STARLING_REPORTING_UPSTREAM_URL"


@operation(
    body=OrdersIn,
    response=IngestOut,
    status_code=202,
    errors=[401, 403, 422],
    scopes=[REPORTS_WRITE],
    tags=["orders"],
)
async def post_orders(request: Request, body: OrdersIn) -> IngestOut:
    """Ingest a batch of orders, idempotently by order id."""
    return await service.ingest_orders(request.app.state.database, body.orders)


@operation(
    query=TopProductsQuery,
    response=list[TopProductOut],
    errors=[401, 403, 422, 503],
    scopes=[REPORTS_READ],
    tags=["reports"],
)
async def get_top_products(request: Request, query: TopProductsQuery) -> list[TopProductOut]:
    """The most bought products by units, ties by title."""
    try:
        return await service.top_products(request.app.state.database, query)
    except service.NoOrderData as exc:
        raise HTTPException(503, detail=str(exc)) from None


@operation(response=ExtractionOut, errors=[401, 403, 503], scopes=[REPORTS_WRITE], tags=["orders"])
async def post_extraction(request: Request) -> ExtractionOut:
    """Read new orders from the upstream orders API, from the last checkpoint on."""
    extract: service.ExtractOrdersUseCase | None = request.app.state.extract_orders
    if extract is None:
        raise HTTPException(503, detail=NOT_CONFIGURED)
    try:
        result = await extract()
    except UpstreamUnavailable as exc:
        raise HTTPException(503, detail=f"The upstream orders API is unavailable: {exc}") from None
    return ExtractionOut(orders_count=result.orders_count, cursor=result.cursor)


@operation(
    query=TimeRange,
    response=list[AgentUsageOut],
    errors=[401, 403, 422, 503],
    scopes=[REPORTS_READ],
    tags=["reports"],
)
async def get_agent_usage(request: Request, query: TimeRange) -> list[AgentUsageOut]:
    """Runs and token usage per agent, from the agents service (or what was stored from it)."""
    state = request.app.state
    try:
        return await service.agent_usage(state.database, state.agents_gateway, query)
    except service.AgentUsageUnavailable as exc:
        raise HTTPException(503, detail=str(exc)) from None


routes = [
    Route("/api/v1/orders", post_orders, methods=["POST"]),
    Route("/top-products", get_top_products, methods=["GET"]),
    Route("/api/v1/extractions", post_extraction, methods=["POST"]),
    Route("/api/v1/reports/agent-usage", get_agent_usage, methods=["GET"]),
]
