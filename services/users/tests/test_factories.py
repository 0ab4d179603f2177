"""The main model made by the kit's `bind_factory` (polyfactory), saved in the test's transaction."""

from __future__ import annotations

from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.ext.asyncio import AsyncSession

from starling_testkit import BindFactory
from starling_users.models import User


class UserFactory(SQLAlchemyFactory[User]):
    role = "user"  # the table checks it is `user` or `admin`


async def test_a_user_is_made_with_an_aware_creation_time(
    bind_factory: BindFactory, db_session: AsyncSession
) -> None:
    made = await bind_factory(UserFactory).create_async()
    db_session.expunge_all()

    stored = await db_session.get(User, made.id)

    assert stored is not None
    assert stored.created_at.tzinfo is not None
