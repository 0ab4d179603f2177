"""All of the users service's SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from starling_core.db import Database
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

    async def replace_password_hash(self, user_id: str, old: str, new: str) -> bool:
        """Set the user's hash to `new` if it is still `old`; True if it was."""
        statement = (
            update(User)
            .where(User.id == user_id, User.password_hash == old)
            .values(password_hash=new)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(statement)
        return bool(getattr(result, "rowcount", 0))

    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]:
        """Up to `limit` users in (created_at, id) order, starting after the key `after`."""
        statement = select(User).order_by(User.created_at, User.id).limit(limit)
        if after is not None:
            created_at, user_id = after
            statement = statement.where(
                or_(User.created_at > created_at, and_(User.created_at == created_at, User.id > user_id))
            )
        return await self.scalars(statement)


class DatabaseUserStores:
    """`UserRepository` on a plain session for reads, or on one in a transaction for writes."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[UserRepository]:
        async with self.database.session() as session:
            yield UserRepository(session)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[UserRepository]:
        async with self.database.transaction() as session:
            yield UserRepository(session)
