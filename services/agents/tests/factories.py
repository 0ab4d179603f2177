"""Rows for tests, stored through the test's own session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from starling_agents.models import Agent, Run
from starling_agents.service import BUILTIN_AGENTS

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def add_builtins(session: AsyncSession) -> None:
    session.add_all(Agent(**builtin, created_at=T0) for builtin in BUILTIN_AGENTS)
    await session.commit()


async def add_run(session: AsyncSession, *, minutes: int = 0, **values: Any) -> Run:
    fields: dict[str, Any] = {
        "agent_id": "summarizer",
        "owner": "test-user-001",
        "status": "completed",
        "input_text": "Some text.",
        "token_usage": 0,
        "created_at": T0 + timedelta(minutes=minutes),
        **values,
    }
    run = Run(**fields)
    session.add(run)
    await session.commit()
    return run
