"""The reporting service's rules: ingesting and ranking orders, extracting orders from upstream, agent usage.

The classes are built once in the app's lifespan; their collaborators come in as arguments.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from starling_core.db import DatabaseUnavailable
from starling_core.events import Event
from starling_reporting.errors import NoOrderData, UpstreamUnavailable
from starling_reporting.gateways import AgentRunsGateway, OrdersGateway
from starling_reporting.repository import ReportingRepositories, ReportingStores
from starling_reporting.schemas import OrderIn, RunFinishedIn, TimeRange, TopProductsQuery

logger = logging.getLogger("starling.reporting")


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


@dataclass(frozen=True)
class RankedProduct:
    rank: int
    product_id: str
    title: str
    cnt_bought: int


@dataclass(frozen=True)
class ExtractionResult:
    orders_count: int
    cursor: str | None


@dataclass(frozen=True)
class AgentUsage:
    agent_id: str
    runs: int
    token_usage: int


class OrdersService:
    def __init__(self, stores: ReportingStores) -> None:
        self.stores = stores

    async def ingest(self, orders: Sequence[OrderIn]) -> IngestResult:
        """Store the orders not stored before, all or none.

        An order whose id is stored already, or came earlier in the batch, is a duplicate.
        """
        async with self.stores.writing() as stored:
            inserted = await stored.orders.insert_new(orders)
        return IngestResult(accepted=len(inserted), duplicates=len(orders) - len(inserted))

    async def place_from_event(self, event: Event[OrderIn], stored: ReportingRepositories) -> None:
        """`order.placed` from the `orders` topic, stored as `ingest` stores an order: by its `order_id`,
        so an order sent again (a replay under a new event id, or one posted too) is counted once. The
        consumer's inbox, in this same transaction, skips a redelivery of the same event before that."""
        await stored.orders.insert_new([event.payload])

    async def top_products(self, query: TopProductsQuery) -> list[RankedProduct]:
        """The most bought products by units, ties by title; `NoOrderData` before any order."""
        async with self.stores.reading() as stored:
            rows = await stored.orders.top_products(query.count, query.since, query.until)
            # Only an empty answer asks the second question: a populated ranking is one query.
            if not rows and not await stored.orders.any_stored():
                raise NoOrderData()
        return [
            RankedProduct(rank=rank, product_id=product_id, title=title, cnt_bought=units)
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


class AgentUsageService:
    def __init__(self, stores: ReportingStores, gateway: AgentRunsGateway) -> None:
        self.stores = stores
        self.gateway = gateway

    async def usage(self, query: TimeRange) -> list[AgentUsage]:
        """Refresh the stored runs from the agents service (the backfill beside the `run.finished` events
        that keep them current), then report from what is stored.

        While the agents service is down, the report comes from the runs stored before; with none
        stored, the outage is the answer (the gateway's `AgentsUnavailable`).
        """
        try:
            runs = [run async for run in self.gateway.runs(query.since)]
        except UpstreamUnavailable as exc:
            async with self.stores.reading() as stored:
                reported_before = await stored.agent_runs.any_stored()
            if not reported_before:
                raise
            logger.warning("agents service unavailable, reporting from stored runs: %s", exc.reason)
        else:
            if runs:
                async with self.stores.writing() as stored:
                    await stored.agent_runs.upsert(runs)
        async with self.stores.reading() as stored:
            rows = await stored.agent_runs.usage(query.since, query.until)
        return [
            AgentUsage(agent_id=agent_id, runs=count, token_usage=tokens) for agent_id, count, tokens in rows
        ]

    async def record_finished(self, event: Event[RunFinishedIn], stored: ReportingRepositories) -> None:
        """`run.finished` from `agents.runs`: the run stored (or brought to its end) by its `run_id`, the
        same row the runs API's pull writes, so the two never count a run twice."""
        await stored.agent_runs.record_finished(event.payload)
