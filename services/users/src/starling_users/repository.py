"""All of the users service's SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import IntegrityError

from starling_core.repository import Repository
from starling_users.errors import EmailTaken
from starling_users.models import User


class UserRepository(Repository[User]):
    model = User

    async def get_by_email(self, email_normalized: str) -> User | None:
        found: User | None = await self.session.scalar(
            select(User).where(User.email_normalized == email_normalized)
        )
        return found

    async def add(self, instance: User) -> User:
        # In a savepoint: a duplicate email undoes this insert only, and the session stays usable.
        try:
            async with self.session.begin_nested():
                self.session.add(instance)
        except IntegrityError as exc:
            raise EmailTaken from exc
        return instance

    async def save(self, instance: User) -> User:
        try:
            async with self.session.begin_nested():
                self.session.add(instance)
                await self.session.flush()
        except IntegrityError as exc:
            raise EmailTaken from exc
        return instance

    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]:
        """Up to `limit` users in (created_at, id) order, starting after the key `after`."""
        statement = select(User).order_by(User.created_at, User.id).limit(limit)
        if after is not None:
            created_at, user_id = after
            statement = statement.where(
                or_(User.created_at > created_at, and_(User.created_at == created_at, User.id > user_id))
            )
        return await self.scalars(statement)
