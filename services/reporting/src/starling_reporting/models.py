"""The reporting tables: orders and their items, the extraction checkpoint, and agent runs read so far."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, new_metadata


class ReportingBase(Base):
    __abstract__ = True
    metadata = new_metadata()  # this service's tables only


class Order(ReportingBase):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class OrderItem(ReportingBase):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(
        String(100), ForeignKey("orders.order_id", ondelete="CASCADE"), index=True
    )
    product_id: Mapped[str] = mapped_column(String(100), index=True)
    title: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer)
    # Minor units (cents): SQLite has no exact decimal type, and a price has two decimal places.
    unit_price_cents: Mapped[int] = mapped_column(BigInteger)


class ExtractionCheckpoint(ReportingBase):
    """Where the next extraction of a stream resumes: the last cursor whose page is stored."""

    __tablename__ = "extraction_checkpoints"

    stream: Mapped[str] = mapped_column(String(50), primary_key=True)
    cursor: Mapped[str | None] = mapped_column(String(2000))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AgentRun(ReportingBase):
    """A run of the agents service, from its `run.finished` event or read from its runs API, kept so the
    usage report answers while that service is down. One row per run, whichever told of it first; no
    owner is kept (the report is per agent, and this service names no user)."""

    __tablename__ = "agent_runs"

    run_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(100), index=True)
    status: Mapped[str] = mapped_column(String(20))
    token_usage: Mapped[int] = mapped_column(BigInteger)
    # Unknown (None) for a run known only from its event until the runs API is read again.
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
