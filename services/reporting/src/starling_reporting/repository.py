"""The reporting service's SQL: idempotent inserts, the top-products aggregate, checkpoints, agent runs;
the stores the services open them through, and the publisher that stores extracted orders."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core.db import Database
from starling_core.repository import Repository, Stores
from starling_reporting.models import AgentRun, ExtractionCheckpoint, Order, OrderItem
from starling_reporting.schemas import AgentRunIn, OrderIn, RunFinishedIn

StatementT = TypeVar("StatementT", bound=Select[*tuple[Any, ...]])

# Rows per INSERT statement, well under SQLite's limit on bound parameters.
_CHUNK = 500

# The checkpoint of the upstream orders API's extraction.
ORDERS_STREAM = "orders"


def _insert(session: AsyncSession, model: type[Any]) -> Any:
    """The dialect's own INSERT, the one that speaks ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        return sqlite.insert(model)
    if dialect == "postgresql":
        return postgresql.insert(model)
    raise NotImplementedError(f"ON CONFLICT is not available on {dialect}")


def _chunks(rows: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _within(statement: StatementT, column: Any, since: datetime | None, until: datetime | None) -> StatementT:
    if since is not None:
        statement = statement.where(column >= since)
    if until is not None:
        statement = statement.where(column < until)
    return statement


class OrderRepository(Repository[Order]):
    model = Order

    async def insert_new(self, orders: Sequence[OrderIn]) -> set[str]:
        """Store the orders whose id is not stored yet, with their items; return the ids stored now.

        The database decides what is new (ON CONFLICT DO NOTHING ... RETURNING), so two requests
        carrying the same order at the same moment store it once and only one of them counts it.
        """
        unique = list({order.order_id: order for order in reversed(orders)}.values())
        inserted: set[str] = set()
        for chunk in _chunks(unique):
            statement = (
                _insert(self.session, Order)
                .values([{"order_id": o.order_id, "created_at": o.created_at} for o in chunk])
                .on_conflict_do_nothing(index_elements=[Order.order_id])
                .returning(Order.order_id)
            )
            inserted.update((await self.session.scalars(statement)).all())
        items = [
            {
                "order_id": order.order_id,
                "product_id": item.product_id,
                "title": item.title,
                "quantity": item.quantity,
                "unit_price_cents": int(item.unit_price * 100),
            }
            for order in unique
            if order.order_id in inserted
            for item in order.items
        ]
        for chunk in _chunks(items):
            await self.session.execute(_insert(self.session, OrderItem), list(chunk))
        return inserted

    async def any_stored(self) -> bool:
        return await self.session.scalar(select(Order.order_id).limit(1)) is not None

    async def top_products(
        self, count: int, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[str, str, int]]:
        """(product_id, title, units bought), most bought first, ties by title: one aggregate query."""
        bought = func.sum(OrderItem.quantity).label("cnt_bought")
        # A product's title is taken to be stable; min() picks one deterministically if it is not.
        title = func.min(OrderItem.title).label("title")
        statement = _within(
            select(OrderItem.product_id, title, bought).join(Order, Order.order_id == OrderItem.order_id),
            Order.created_at,
            since,
            until,
        )
        statement = (
            statement.group_by(OrderItem.product_id)
            .order_by(bought.desc(), title, OrderItem.product_id)
            .limit(count)
        )
        rows = (await self.session.execute(statement)).all()
        return [(product_id, product_title, int(units)) for product_id, product_title, units in rows]


class CheckpointRepository(Repository[ExtractionCheckpoint]):
    model = ExtractionCheckpoint

    async def cursor(self, stream: str) -> str | None:
        return await self.session.scalar(
            select(ExtractionCheckpoint.cursor).where(ExtractionCheckpoint.stream == stream)
        )

    async def save(self, stream: str, cursor: str | None) -> None:
        values = {"stream": stream, "cursor": cursor, "updated_at": datetime.now(UTC)}
        statement = _insert(self.session, ExtractionCheckpoint).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[ExtractionCheckpoint.stream],
            set_={"cursor": statement.excluded.cursor, "updated_at": statement.excluded.updated_at},
        )
        await self.session.execute(statement)


class AgentRunRepository(Repository[AgentRun]):
    model = AgentRun

    async def upsert(self, runs: Sequence[AgentRunIn]) -> None:
        """Insert new runs and bring known ones up to date (a run read while running may finish later).

        A finished run stays finished: an older read of it, still running, changes nothing but its
        creation time, which only the runs API knows.
        """
        unique = list({run.run_id: run for run in runs}.values())
        for chunk in _chunks(unique):
            statement = _insert(self.session, AgentRun).values(
                [
                    {
                        "run_id": run.run_id,
                        "agent_id": run.agent_id,
                        "status": run.status,
                        "token_usage": run.token_usage or 0,
                        "created_at": run.created_at,
                        "finished_at": run.finished_at,
                    }
                    for run in chunk
                ]
            )
            excluded = statement.excluded
            stale = AgentRun.finished_at.is_not(None) & excluded.finished_at.is_(None)
            statement = statement.on_conflict_do_update(
                index_elements=[AgentRun.run_id],
                set_={
                    "agent_id": excluded.agent_id,
                    "created_at": excluded.created_at,
                    **{
                        name: case((stale, getattr(AgentRun, name)), else_=getattr(excluded, name))
                        for name in ("status", "token_usage", "finished_at")
                    },
                },
            )
            await self.session.execute(statement)

    async def record_finished(self, run: RunFinishedIn) -> None:
        """A run as its `run.finished` event tells it: inserted, or brought to its final state (its
        creation time, if the runs API gave one, is kept)."""
        statement = _insert(self.session, AgentRun).values(
            run_id=run.run_id,
            agent_id=run.agent_id,
            status=run.status,
            token_usage=run.token_usage or 0,
            created_at=None,
            finished_at=run.finished_at,
        )
        excluded = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[AgentRun.run_id],
            set_={
                "agent_id": excluded.agent_id,
                "status": excluded.status,
                "token_usage": excluded.token_usage,
                "finished_at": excluded.finished_at,
            },
        )
        await self.session.execute(statement)

    async def any_stored(self) -> bool:
        return await self.session.scalar(select(AgentRun.run_id).limit(1)) is not None

    async def usage(
        self, since: datetime | None = None, until: datetime | None = None
    ) -> list[tuple[str, int, int]]:
        """(agent_id, runs, token usage) per agent, by agent id; a run is in the range by its creation
        time, or by its finish while only its event told of it."""
        statement = _within(
            select(AgentRun.agent_id, func.count(), func.coalesce(func.sum(AgentRun.token_usage), 0)),
            func.coalesce(AgentRun.created_at, AgentRun.finished_at),
            since,
            until,
        )
        statement = statement.group_by(AgentRun.agent_id).order_by(AgentRun.agent_id)
        rows = (await self.session.execute(statement)).all()
        return [(agent_id, int(runs), int(tokens)) for agent_id, runs, tokens in rows]


@dataclass(frozen=True)
class ReportingRepositories:
    """The service's repositories, on one session."""

    orders: OrderRepository
    checkpoints: CheckpointRepository
    agent_runs: AgentRunRepository

    @classmethod
    def on(cls, session: AsyncSession) -> ReportingRepositories:
        return cls(
            OrderRepository(session),
            CheckpointRepository(session),
            AgentRunRepository(session),
        )


class ReportingStores(Stores[ReportingRepositories]):
    """The repositories on a plain session for reads, or in a transaction for writes."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, ReportingRepositories.on)


class DatabaseOrdersPublisher:
    """Where extraction publishes: stores as `POST /api/v1/orders` does, with the checkpoint in the same
    transaction."""

    def __init__(self, database: Database, stream: str = ORDERS_STREAM) -> None:
        self.stores = ReportingStores(database)
        self.stream = stream

    async def checkpoint(self) -> str | None:
        async with self.stores.reading() as stored:
            return await stored.checkpoints.cursor(self.stream)

    async def publish(self, orders: Sequence[OrderIn], *, checkpoint: str | None) -> int:
        async with self.stores.writing() as stored:
            inserted = await stored.orders.insert_new(orders) if orders else set()
            await stored.checkpoints.save(self.stream, checkpoint)
        return len(inserted)
