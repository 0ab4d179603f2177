"""All of the users service's SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value

from starling_core.db import Database
from starling_core.events import Outbox
from starling_core.events.topics import USER_CHANGED, USER_DELETED, UserEvent
from starling_core.repository import Repository
from starling_users.errors import EmailTaken
from starling_users.models import ADMIN, RefreshToken, User


class UserRepository(Repository[User]):
    model = User

    async def get_by_email(self, email_normalized: str) -> User | None:
        found: User | None = await self.session.scalar(
            select(User).where(User.email_normalized == email_normalized)
        )
        return found

    async def hold(self, user_id: str) -> User | None:
        """The user, its row locked until the transaction ends (FOR UPDATE; SQLite writes one transaction
        at a time anyway): a change or deletion of the user waits, and so does another login's hold."""
        found: User | None = await self.session.get(User, user_id, with_for_update=True)
        return found

    async def lock_admins(self) -> list[str]:
        """The administrators' ids, their rows locked until the transaction ends (FOR UPDATE).

        Two transactions that each demote or delete an administrator take these locks in the same
        order, so the second waits for the first and then counts without the one the first removed.
        """
        statement = select(User.id).where(User.role == ADMIN).order_by(User.id).with_for_update()
        return list((await self.session.scalars(statement)).all())

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

    async def end_tokens(self, user: User) -> None:
        """Move the user's token version on and forget their refresh tokens: every token issued to them
        so far stops working here."""
        # Counted by the database, so two concurrent changes move it on twice rather than once.
        version = await self.session.scalar(
            update(User)
            .where(User.id == user.id)
            .values(token_version=User.token_version + 1)
            .returning(User.token_version)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(user, "token_version", version)
        await self.session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))

    async def announce_changed(self, user: User) -> None:
        """`user.changed` into core's outbox, in this transaction: the user's earlier tokens ended (a role
        or password change, a logout); the relay sends it to `users.users`, keyed by the user's id."""
        payload = UserEvent(user_id=user.id, role=user.role)
        await Outbox(self.session).add(USER_CHANGED, key=user.id, payload=payload)

    async def announce_deleted(self, user_id: str, role: str) -> None:
        """`user.deleted` into core's outbox, in this transaction, with the role the user had."""
        payload = UserEvent(user_id=user_id, role=role)
        await Outbox(self.session).add(USER_DELETED, key=user_id, payload=payload)

    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]:
        """Up to `limit` users in (created_at, id) order, starting after the key `after`."""
        statement = select(User).order_by(User.created_at, User.id).limit(limit)
        if after is not None:
            created_at, user_id = after
            statement = statement.where(
                or_(User.created_at > created_at, and_(User.created_at == created_at, User.id > user_id))
            )
        return await self.scalars(statement)

    # --- refresh tokens ---------------------------------------------------------------------------

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self.session.add(token)
        await self.session.flush()

    async def refresh_token(self, digest: str) -> RefreshToken | None:
        found: RefreshToken | None = await self.session.scalar(
            select(RefreshToken).where(RefreshToken.digest == digest)
        )
        return found

    async def rotate_refresh_token(self, token_id: str, at: datetime) -> bool:
        """Mark the token exchanged at `at` unless it already was; True if this call marked it."""
        result = await self.session.execute(
            update(RefreshToken)
            .where(RefreshToken.id == token_id, RefreshToken.rotated_at.is_(None))
            .values(rotated_at=at)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

    async def revoke_refresh_family(self, family_id: str) -> None:
        await self.session.execute(delete(RefreshToken).where(RefreshToken.family_id == family_id))

    async def purge_refresh_tokens(self, user_id: str, *, expired_at: datetime) -> None:
        """Forget the user's refresh tokens that expired by `expired_at`: none of them can be used again."""
        await self.session.execute(
            delete(RefreshToken).where(RefreshToken.user_id == user_id, RefreshToken.expires_at <= expired_at)
        )


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
