"""Use cases: ingesting orders, ranking products, extracting orders from upstream, agent usage."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from starling_core.db import Database, DatabaseUnavailable
from starling_reporting.gateways import AgentRunsGateway, OrdersGateway, UpstreamUnavailable
from starling_reporting.repository import AgentRunRepository, CheckpointRepository, OrderRepository
from starling_reporting.schemas import (
    AgentUsageOut,
    IngestOut,
    OrderIn,
    TimeRange,
    TopProductOut,
    TopProductsQuery,
)

logger = logging.getLogger("starling.reporting")

ORDERS_STREAM = "orders"


class NoOrderData(Exception):
    """No order has ever been stored, so there is nothing to rank yet."""


class AgentUsageUnavailable(Exception):
    """The agents service cannot be read and no run has been stored before."""


async def ingest_orders(database: Database, orders: Sequence[OrderIn]) -> IngestOut:
    """Store the orders not stored before, all or none.

    An order whose id is stored already, or came earlier in the batch, is a duplicate.
    """
    async with database.transaction() as session:
        inserted = await OrderRepository(session).insert_new(orders)
    return IngestOut(accepted=len(inserted), duplicates=len(orders) - len(inserted))


async def top_products(database: Database, query: TopProductsQuery) -> list[TopProductOut]:
    async with database.session() as session:
        repository = OrderRepository(session)
        rows = await repository.top_products(query.count, query.since, query.until)
        # Only an empty answer asks the second question: a populated ranking is one query.
        if not rows and not await repository.any_stored():
            raise NoOrderData("No order data has arrived yet")
    return [
        TopProductOut(product_id=product_id, title=title, rank=rank, cnt_bought=units)
        for rank, (product_id, title, units) in enumerate(rows, start=1)
    ]


class OrdersPublisher(Protocol):
    async def checkpoint(self) -> str | None:
        """The cursor the next extraction resumes from (None: from the start)."""
        ...

    async def publish(self, orders: Sequence[OrderIn], *, checkpoint: str | None) -> int:
        """Store `orders` idempotently and move the checkpoint to `checkpoint`, both or neither.

        Returns how many of the orders were not stored before.
        """
        ...


class DatabaseOrdersPublisher:
    """Stores as `POST /api/v1/orders` does, with the checkpoint in the same transaction."""

    def __init__(self, database: Database, stream: str = ORDERS_STREAM) -> None:
        self.database = database
        self.stream = stream

    async def checkpoint(self) -> str | None:
        async with self.database.session() as session:
            return await CheckpointRepository(session).cursor(self.stream)

    async def publish(self, orders: Sequence[OrderIn], *, checkpoint: str | None) -> int:
        async with self.database.transaction() as session:
            inserted = await OrderRepository(session).insert_new(orders) if orders else set()
            await CheckpointRepository(session).save(self.stream, checkpoint)
        return len(inserted)


@dataclass(frozen=True)
class ExtractionResult:
    orders_count: int
    cursor: str | None


class ExtractOrdersUseCase:
    """Reads the upstream's orders from the last checkpoint on and publishes them a page at a time.

    The checkpoint moves only with a published page, so a run that fails half-way keeps what it
    stored and the next run resumes after the last stored page, skipping nothing.
    """

    def __init__(self, gateway: OrdersGateway, publisher: OrdersPublisher) -> None:
        self.gateway = gateway
        self.publisher = publisher

    async def __call__(self) -> ExtractionResult:
        cursor = await self.publisher.checkpoint()
        stored = 0
        async for page in self.gateway.pages(cursor):
            stored += await self.publisher.publish(page.orders, checkpoint=page.resume_cursor)
            cursor = page.resume_cursor
        return ExtractionResult(orders_count=stored, cursor=cursor)


async def run_periodically(extract: ExtractOrdersUseCase, interval: float, ran: asyncio.Event) -> None:
    """Extract now and then every `interval` seconds until cancelled; a failed run waits for the next."""
    while True:
        try:
            result = await extract()
            logger.info("extracted %d new orders, checkpoint %r", result.orders_count, result.cursor)
        except (UpstreamUnavailable, DatabaseUnavailable) as exc:
            # Outages are operational events with a known cause: one line each, no traceback.
            logger.warning("periodic extraction failed: %s", exc)
        except Exception:
            # The loop outlives one bad run (a database hiccup, say); the next run starts over from
            # the checkpoint, which never moved past what was stored.
            logger.exception("periodic extraction failed")
        ran.set()
        await asyncio.sleep(interval)


async def agent_usage(database: Database, gateway: AgentRunsGateway, query: TimeRange) -> list[AgentUsageOut]:
    """Refresh the stored runs from the agents service, then report from what is stored."""
    try:
        runs = [run async for run in gateway.runs(query.since)]
    except UpstreamUnavailable as exc:
        async with database.session() as session:
            if not await AgentRunRepository(session).any_stored():
                raise AgentUsageUnavailable(f"The agents service is unavailable: {exc}") from exc
        logger.warning("agents service unavailable, reporting from stored runs: %s", exc)
    else:
        if runs:
            async with database.transaction() as session:
                await AgentRunRepository(session).upsert(runs)
    async with database.session() as session:
        rows = await AgentRunRepository(session).usage(query.since, query.until)
    return [
        AgentUsageOut(agent_id=agent_id, runs=count, token_usage=tokens) for agent_id, count, tokens in rows
    ]
