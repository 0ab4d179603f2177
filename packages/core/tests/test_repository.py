"""The repository base against the test's database."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from .itemsapp import Item, ItemRepository


async def test_add_get_count_delete(db_session: AsyncSession) -> None:
    repository = ItemRepository(db_session)
    item = await repository.add(Item(name="widget"))
    assert item.id is not None  # the database assigned the key on flush
    assert await repository.get(item.id) is item
    assert await repository.count() == 1
    await repository.delete(item)
    assert await repository.count() == 0
    assert await repository.get(item.id) is None


async def test_scalars_runs_a_select(db_session: AsyncSession) -> None:
    repository = ItemRepository(db_session)
    for name in ("b", "a"):
        await repository.add(Item(name=name))
    found = await repository.scalars(repository.select().order_by(Item.name))
    assert [item.name for item in found] == ["a", "b"]
