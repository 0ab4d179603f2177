"""Use cases: the ingestion rules, the ranking, and extraction with the kit's fake stream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from starling_core.db import DatabaseUnavailable
from starling_reporting import service
from starling_reporting.errors import NoOrderData, UpstreamUnavailable
from starling_reporting.gateways import OrdersGateway, OrdersPage
from starling_reporting.repository import DatabaseOrdersPublisher, ReportingStores
from starling_reporting.schemas import TopProductsQuery
from starling_testkit import BoundDatabase, fake_stream, mock_of

from .fakes import T0, RecordingPublisher, order


@pytest.fixture
def orders(app_database: BoundDatabase) -> service.OrdersService:
    return service.OrdersService(ReportingStores(app_database))


async def test_new_orders_are_accepted(orders: service.OrdersService) -> None:
    result = await orders.ingest([order("o1", ("p1", "Apple", 1)), order("o2", ("p1", "Apple", 2))])
    assert (result.accepted, result.duplicates) == (2, 0)


async def test_a_replayed_order_is_a_duplicate_and_counted_once(orders: service.OrdersService) -> None:
    await orders.ingest([order("o1", ("p1", "Apple", 3))])
    replay = await orders.ingest([order("o1", ("p1", "Apple", 3)), order("o2", ("p1", "Apple", 1))])
    assert (replay.accepted, replay.duplicates) == (1, 1)
    ranking = await orders.top_products(TopProductsQuery())
    assert [(p.product_id, p.cnt_bought) for p in ranking] == [("p1", 4)]


async def test_the_same_order_twice_in_one_batch_counts_once(orders: service.OrdersService) -> None:
    result = await orders.ingest([order("o1", ("p1", "Apple", 3)), order("o1", ("p1", "Apple", 3))])
    assert (result.accepted, result.duplicates) == (1, 1)
    ranking = await orders.top_products(TopProductsQuery())
    assert ranking[0].cnt_bought == 3


async def test_ranking_is_by_units_bought_then_title(orders: service.OrdersService) -> None:
    # Units: pear 5 (2+3), apple 5, kiwi 7, fig 1. Pear and apple tie: apple's title comes first.
    await orders.ingest(
        [
            order("o1", ("pear", "Pear", 2), ("kiwi", "Kiwi", 7)),
            order("o2", ("pear", "Pear", 3), ("apple", "Apple", 5)),
            order("o3", ("fig", "Fig", 1)),
        ],
    )
    ranking = await orders.top_products(TopProductsQuery(count=3))
    assert [(p.rank, p.product_id, p.title, p.cnt_bought) for p in ranking] == [
        (1, "kiwi", "Kiwi", 7),
        (2, "apple", "Apple", 5),
        (3, "pear", "Pear", 5),
    ]


async def test_ranking_counts_only_orders_in_the_time_range(orders: service.OrdersService) -> None:
    await orders.ingest(
        [
            order("early", ("p1", "One", 10), created_at=T0 - timedelta(days=1)),
            order("inside", ("p2", "Two", 1), created_at=T0),
            order("late", ("p3", "Three", 10), created_at=T0 + timedelta(days=1)),
        ],
    )
    query = TopProductsQuery(since=T0, until=T0 + timedelta(days=1))
    ranking = await orders.top_products(query)
    assert [p.product_id for p in ranking] == ["p2"]


async def test_ranking_without_any_order_is_no_order_data(orders: service.OrdersService) -> None:
    with pytest.raises(NoOrderData):
        await orders.top_products(TopProductsQuery())


async def test_ranking_of_an_empty_range_with_data_is_empty(orders: service.OrdersService) -> None:
    await orders.ingest([order("o1", ("p1", "Apple", 1))])
    query = TopProductsQuery(since=T0 + timedelta(days=30))
    assert await orders.top_products(query) == []


PAGES = [
    OrdersPage([order("o1", ("p1", "A", 1)), order("o2", ("p1", "A", 1))], "c1"),
    OrdersPage([order("o3", ("p2", "B", 1))], "c2"),
    OrdersPage([order("o4", ("p2", "B", 1))], "c2"),
]
# The cursor each page is read at: the first page at none, every other at the one before it left.
CURSORS: list[str | None] = [None, *(page.resume_cursor for page in PAGES[:-1])]


def gateway(*, fail_after: int | None = None) -> Any:
    """An orders gateway whose `pages(cursor)` streams, with the kit's `fake_stream`, the pages from
    `cursor` on; with `fail_after=n`, the stream breaks off after n pages, the upstream gone away."""
    double = mock_of(OrdersGateway)

    def pages(cursor: str | None) -> AsyncIterator[OrdersPage]:
        error = UpstreamUnavailable("upstream went away half-way")
        return fake_stream(PAGES[CURSORS.index(cursor) :], fail_after=fail_after, error=error)

    double.pages.side_effect = pages
    return double


async def test_extraction_publishes_every_page_and_checkpoints_after_each() -> None:
    publisher = RecordingPublisher()
    result = await service.ExtractOrdersUseCase(gateway(), publisher)()
    assert sorted(publisher.stored) == ["o1", "o2", "o3", "o4"]
    assert publisher.checkpoints == ["c1", "c2", "c2"]
    assert (result.orders_count, result.cursor) == (4, "c2")


async def test_a_rerun_resumes_from_the_checkpoint() -> None:
    publisher = RecordingPublisher()
    first = gateway()
    await service.ExtractOrdersUseCase(first, publisher)()
    first.pages.assert_called_once_with(None)
    rerun = gateway()
    result = await service.ExtractOrdersUseCase(rerun, publisher)()
    rerun.pages.assert_called_once_with("c2")
    assert (result.orders_count, result.cursor) == (0, "c2")


async def test_a_stream_failing_half_way_keeps_what_was_stored_and_skips_nothing() -> None:
    publisher = RecordingPublisher()
    with pytest.raises(UpstreamUnavailable, match="half-way"):
        await service.ExtractOrdersUseCase(gateway(fail_after=1), publisher)()
    assert sorted(publisher.stored) == ["o1", "o2"]
    assert await publisher.checkpoint() == "c1"

    rerun = gateway()
    result = await service.ExtractOrdersUseCase(rerun, publisher)()
    rerun.pages.assert_called_once_with("c1")
    assert sorted(publisher.stored) == ["o1", "o2", "o3", "o4"]
    assert result.orders_count == 2


async def test_database_publisher_stores_pages_and_checkpoint_together(
    app_database: BoundDatabase, orders: service.OrdersService
) -> None:
    publisher = DatabaseOrdersPublisher(app_database)
    with pytest.raises(UpstreamUnavailable, match="half-way"):
        await service.ExtractOrdersUseCase(gateway(fail_after=1), publisher)()
    assert await publisher.checkpoint() == "c1"
    ranking = await orders.top_products(TopProductsQuery())
    assert [(p.product_id, p.cnt_bought) for p in ranking] == [("p1", 2)]

    result = await service.ExtractOrdersUseCase(gateway(), publisher)()
    assert (result.orders_count, result.cursor) == (2, "c2")
    ranking = await orders.top_products(TopProductsQuery())
    assert [(p.product_id, p.cnt_bought) for p in ranking] == [("p1", 2), ("p2", 2)]


class OutagePublisher(RecordingPublisher):
    """A publisher whose database is down for the first run."""

    def __init__(self) -> None:
        super().__init__()
        self.outages = 1

    async def checkpoint(self) -> str | None:
        if self.outages:
            self.outages -= 1
            raise DatabaseUnavailable("database unavailable: ConnectionRefusedError")
        return await super().checkpoint()


async def test_periodic_extraction_outlives_a_database_outage_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = OutagePublisher()
    ran = asyncio.Event()
    task = asyncio.create_task(
        service.run_periodically(service.ExtractOrdersUseCase(gateway(), publisher), 0, ran)
    )
    try:
        for _ in range(2):  # the failed run, then the one after it
            await asyncio.wait_for(ran.wait(), timeout=5)
            ran.clear()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert sorted(publisher.stored) == ["o1", "o2", "o3", "o4"]
    failures = [r for r in caplog.records if r.getMessage().startswith("periodic extraction failed")]
    assert [(r.levelname, r.exc_info) for r in failures] == [("WARNING", None)]
    assert "ConnectionRefusedError" in failures[0].getMessage()
