"""The main model made by the kit's `bind_factory` (polyfactory), saved in the test's transaction."""

from __future__ import annotations

from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.ext.asyncio import AsyncSession

from starling_reporting.models import Order
from starling_testkit import BindFactory


class OrderFactory(SQLAlchemyFactory[Order]): ...


async def test_an_order_is_made_and_stored(bind_factory: BindFactory, db_session: AsyncSession) -> None:
    made = await bind_factory(OrderFactory).create_async()
    db_session.expunge_all()

    stored = await db_session.get(Order, made.order_id)

    assert stored is not None
    assert stored.order_id == made.order_id
