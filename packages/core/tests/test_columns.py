"""`UTCDateTime` stores and returns timezone-aware UTC times on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Column, Integer, MetaData, Table, insert, select
from sqlalchemy.exc import StatementError
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core.db import UTCDateTime

events = Table(
    "events", MetaData(), Column("id", Integer, primary_key=True), Column("at", UTCDateTime(), nullable=True)
)


@pytest.fixture
async def events_table(db_session: AsyncSession) -> None:
    connection = await db_session.connection()
    await connection.run_sync(events.create)  # inside the test's transaction, so it rolls back too


@pytest.mark.usefixtures("events_table")
async def test_an_aware_time_comes_back_in_utc(db_session: AsyncSession) -> None:
    local = datetime(2026, 11, 23, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    await db_session.execute(insert(events).values(id=1, at=local))
    stored = await db_session.scalar(select(events.c.at))
    assert stored == local
    assert stored is not None
    assert stored.tzinfo == UTC


@pytest.mark.usefixtures("events_table")
async def test_a_naive_time_is_refused(db_session: AsyncSession) -> None:
    with pytest.raises(StatementError, match="naive datetime"):
        await db_session.execute(insert(events).values(id=2, at=datetime(2026, 11, 23, 14, 30)))
