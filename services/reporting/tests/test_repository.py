"""The repositories' SQL on the test's own session."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from starling_reporting.models import AgentRun, OrderItem
from starling_reporting.repository import AgentRunRepository, CheckpointRepository, OrderRepository
from starling_reporting.schemas import AgentRunIn, OrderIn, OrderItemIn

from .fakes import T0, order


async def test_insert_new_returns_only_the_ids_stored_now(db_session: AsyncSession) -> None:
    repository = OrderRepository(db_session)
    assert await repository.insert_new([order("o1", ("p1", "A", 1))]) == {"o1"}
    assert await repository.insert_new([order("o1", ("p1", "A", 1)), order("o2", ("p1", "A", 1))]) == {"o2"}
    assert await repository.count() == 2


async def test_insert_new_stores_items_of_new_orders_only(db_session: AsyncSession) -> None:
    repository = OrderRepository(db_session)
    await repository.insert_new([order("o1", ("p1", "A", 1), ("p2", "B", 2))])
    await repository.insert_new([order("o1", ("p1", "A", 50))])
    quantities = (await db_session.scalars(select(OrderItem.quantity).order_by(OrderItem.id))).all()
    assert quantities == [1, 2]


async def test_prices_are_stored_in_cents(db_session: AsyncSession) -> None:
    item = OrderItemIn(product_id="p", title="P", quantity=1, unit_price=Decimal("12.34"))
    await OrderRepository(db_session).insert_new([OrderIn(order_id="o", created_at=T0, items=[item])])
    assert await db_session.scalar(select(OrderItem.unit_price_cents)) == 1234


async def test_batches_over_one_chunk_are_stored_whole(db_session: AsyncSession) -> None:
    orders = [order(f"o{i}", ("p", "P", 1)) for i in range(1200)]
    assert len(await OrderRepository(db_session).insert_new(orders)) == 1200
    assert await OrderRepository(db_session).top_products(1) == [("p", "P", 1200)]


async def test_top_products_limits_and_orders(db_session: AsyncSession) -> None:
    repository = OrderRepository(db_session)
    await repository.insert_new([order("o1", ("b", "Banana", 2), ("a", "Apple", 2), ("c", "Cherry", 9))])
    assert await repository.top_products(2) == [("c", "Cherry", 9), ("a", "Apple", 2)]


async def test_top_products_range_is_since_inclusive_until_exclusive(db_session: AsyncSession) -> None:
    repository = OrderRepository(db_session)
    await repository.insert_new(
        [
            order("o1", ("a", "A", 1), created_at=T0),
            order("o2", ("b", "B", 1), created_at=T0 + timedelta(hours=1)),
        ]
    )
    assert await repository.top_products(10, since=T0, until=T0 + timedelta(hours=1)) == [("a", "A", 1)]


async def test_checkpoint_is_none_until_saved_then_the_last_saved(db_session: AsyncSession) -> None:
    repository = CheckpointRepository(db_session)
    assert await repository.cursor("orders") is None
    await repository.save("orders", "c1")
    await repository.save("orders", "c2")
    assert await repository.cursor("orders") == "c2"
    assert await repository.cursor("other") is None


def _run(run_id: str, status: str, tokens: int | None) -> AgentRunIn:
    return AgentRunIn(run_id=run_id, agent_id="summarizer", status=status, token_usage=tokens, created_at=T0)


async def test_agent_runs_upsert_updates_known_runs(db_session: AsyncSession) -> None:
    repository = AgentRunRepository(db_session)
    await repository.upsert([_run("r1", "running", None), _run("r2", "completed", 4)])
    await repository.upsert([_run("r1", "completed", 6)])
    run = await db_session.scalar(
        select(AgentRun).where(AgentRun.run_id == "r1").execution_options(populate_existing=True)
    )
    assert run is not None
    assert (run.status, run.token_usage) == ("completed", 6)
    assert await repository.usage() == [("summarizer", 2, 10)]


async def test_agent_usage_is_empty_before_any_run(db_session: AsyncSession) -> None:
    repository = AgentRunRepository(db_session)
    assert not await repository.any_stored()
    assert await repository.usage() == []
