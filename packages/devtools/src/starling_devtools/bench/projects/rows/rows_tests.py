"""Insert a row, then count exactly one: a test that sees a row left by an earlier one fails, so the run
passing proves each test was rolled back. The same test for the kit and for the textbook recipe."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmodel import Row
from benchsizes import numbered
from sqlalchemy import func, select

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession


async def _sees_only_its_own_row(db_session: AsyncSession) -> None:
    db_session.add(Row(name="r"))
    await db_session.flush()
    assert await db_session.scalar(select(func.count()).select_from(Row)) == 1


globals().update(numbered(__name__, _sees_only_its_own_row))
