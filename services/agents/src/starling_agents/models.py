"""The agents tables: the agent catalogue and the runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, UTCDateTime, new_metadata

KINDS = ("summarizer", "classifier", "llm")
STATUSES = ("queued", "running", "completed", "failed", "cancelled")
UNFINISHED = ("queued", "running")


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


class AgentsBase(Base):
    __abstract__ = True
    metadata = new_metadata()  # this service's tables only


class Agent(AgentsBase):
    __tablename__ = "agents"

    agent_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    kind: Mapped[str] = mapped_column(String(20))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class Run(AgentsBase):
    __tablename__ = "runs"
    __table_args__ = (
        Index("ix_runs_owner_created_at", "owner", "created_at"),
        Index("ix_runs_created_at_run_id", "created_at", "run_id"),
    )

    run_id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    # No foreign key: a run outlives the agent it ran (its history stays readable after a delete).
    agent_id: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), index=True)
    input_text: Mapped[str] = mapped_column(Text)
    output: Mapped[str | None] = mapped_column(Text)
    token_usage: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Until when the process running this run holds it: a `running` run past its lease (or with none)
    # was left by a process that died, and any process may take it.
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    lease_holder: Mapped[str | None] = mapped_column(String(32))  # the holding process's id
