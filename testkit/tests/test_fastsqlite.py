"""The test engine's SQLite driver answers exactly what aiosqlite answers, in fewer thread hops."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiosqlite
import pytest
from sqlalchemy import CursorResult, String, delete, exc, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, create_engine
from starling_testkit import fastsqlite


class ThingBase(Base):
    __abstract__ = True


class Thing(ThingBase):
    __tablename__ = "things"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)


async def exercise(url: str, connect_args: dict[str, Any]) -> list[Any]:
    """Inserts (one and many), updates, deletes, a constraint error, streaming and raw SQL."""
    engine = create_engine(url, connect_args=connect_args)
    seen: list[Any] = []
    try:
        async with engine.begin() as connection:
            await connection.run_sync(ThingBase.metadata.create_all)
        async with AsyncSession(engine) as session:
            session.add_all([Thing(name=f"n{i}") for i in range(150)])
            await session.flush()
            seen.append(sorted((await session.scalars(select(Thing.id))).all())[-3:])
            await session.execute(insert(Thing), [{"name": f"m{i}"} for i in range(5)])
            renamed = await session.execute(update(Thing).where(Thing.id < 10).values(name="u" + Thing.name))
            seen.append(cast(CursorResult[Any], renamed).rowcount)
            deleted = await session.execute(delete(Thing).where(Thing.id > 150))
            seen.append(cast(CursorResult[Any], deleted).rowcount)
            await session.commit()
            session.add(Thing(name="n20"))
            with pytest.raises(exc.IntegrityError):
                await session.flush()
            await session.rollback()
            streamed = await session.stream_scalars(select(Thing.name).order_by(Thing.id))
            seen.append([name async for name in streamed][:12])
            partitions = await session.stream(select(Thing.id).order_by(Thing.id))
            seen.append([len(part) async for part in partitions.partitions(40)])
            seen.append((await session.execute(text("SELECT 1, 'a' UNION ALL SELECT 2, 'b'"))).all())
            seen.append(await session.scalar(select(func.count()).select_from(Thing)))
            seen.append(await session.scalar(select(Thing.id).where(Thing.name == "absent")))
        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            seen.append(type(raw.driver_connection).__module__)
    finally:
        await engine.dispose()
    return seen


async def test_answers_what_aiosqlite_answers(tmp_path: Path) -> None:
    plain = await exercise(f"sqlite+aiosqlite:///{tmp_path / 'plain.db'}", {})
    fast = await exercise(f"sqlite+aiosqlite:///{tmp_path / 'fast.db'}", fastsqlite.CONNECT_ARGS)
    assert plain[:-1] == fast[:-1]
    assert plain[1:3] == [9, 5]  # the exercise itself did what it says
    assert (plain[-1], fast[-1]) == ("aiosqlite.core", "starling_testkit.fastsqlite")


async def test_one_hop_per_statement(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hops: list[str] = []
    hop = cast(Callable[..., Awaitable[Any]], aiosqlite.Connection._execute)

    async def counted(self: aiosqlite.Connection, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(fn, "__name__", repr(fn)))
        return await hop(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    engine = create_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'hops.db'}", connect_args=fastsqlite.CONNECT_ARGS
    )
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 0"))  # after core's BEGIN (a hop of its own)
            hops.clear()
            assert (await connection.execute(text("SELECT 1 UNION ALL SELECT 2"))).all() == [(1,), (2,)]
            assert hops == ["_run"]  # aiosqlite itself: cursor, execute, fetchall, close
    finally:
        await engine.dispose()


async def test_errors_are_the_drivers_own(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'err.db'}", connect_args=fastsqlite.CONNECT_ARGS)
    try:
        async with engine.connect() as connection:
            with pytest.raises(exc.OperationalError, match="no such table"):
                await connection.execute(text("SELECT * FROM missing"))
    finally:
        await engine.dispose()
