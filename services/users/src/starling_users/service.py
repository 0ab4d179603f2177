"""The users service's rules. Collaborators come in as arguments, so tests hand in fakes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import BaseModel, ValidationError

from starling_core.pagination import InvalidCursor, decode_cursor, encode_cursor
from starling_core.validation import UTCDatetime, unstorable
from starling_users.emails import email_key, lookup_key
from starling_users.errors import (
    AdministratorRequired,
    CurrentPasswordRequired,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    LastAdministrator,
    RoleChangeForbidden,
    TokenRevoked,
    UserNotFound,
)
from starling_users.models import ADMIN, RefreshToken, User, new_id
from starling_users.schemas import UserCreate, UserUpdate
from starling_users.settings import REFRESH_TOKEN_EXPIRES_IN
from starling_users.tokens import Credentials, new_refresh_token, refresh_digest

Clock = Callable[[], datetime]
logger = logging.getLogger("starling.users")

# The longest user id there is (a UUID); a token's subject longer than that names nobody.
MAX_USER_ID_LENGTH = 36


def utcnow() -> datetime:
    return datetime.now(UTC)


class UserStore(Protocol):
    """What the service needs from storage; `UserRepository` is the real one."""

    async def get(self, ident: str) -> User | None: ...
    async def get_by_email(self, email_normalized: str) -> User | None: ...
    async def hold(self, user_id: str) -> User | None: ...
    async def lock_admins(self) -> list[str]: ...
    async def add(self, instance: User) -> User: ...  # raises EmailTaken
    async def save(self, instance: User) -> User: ...  # raises EmailTaken
    async def end_tokens(self, user: User) -> None: ...
    async def delete(self, instance: User) -> None: ...
    async def announce_changed(self, user: User) -> None: ...  # core's outbox: `user.changed`
    async def announce_deleted(self, user_id: str, role: str) -> None: ...  # `user.deleted`
    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]: ...
    async def add_refresh_token(self, token: RefreshToken) -> None: ...
    async def refresh_token(self, digest: str) -> RefreshToken | None: ...
    async def rotate_refresh_token(self, token_id: str, at: datetime) -> bool: ...
    async def revoke_refresh_family(self, family_id: str) -> None: ...
    async def purge_refresh_tokens(self, user_id: str, *, expired_at: datetime) -> None: ...


class UserStores(Protocol):
    """A store for reads, or one in a transaction for writes; `DatabaseUserStores` is the real one.

    The service opens them itself, around its statements only: an Argon2id hash takes tens of
    milliseconds, and must not hold a transaction (on SQLite, the process's write turn) meanwhile.
    """

    def reading(self) -> AbstractAsyncContextManager[UserStore]: ...
    def writing(self) -> AbstractAsyncContextManager[UserStore]: ...


class PasswordHashing(Protocol):
    async def hash(self, password: str) -> str: ...
    async def verify(self, password_hash: str, password: str) -> bool: ...
    async def dummy_verify(self, password: str) -> None: ...
    def needs_rehash(self, password_hash: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is asking, as their row says now: their id, and whether their stored role is admin."""

    user_id: str
    is_admin: bool = False

    @classmethod
    def of(cls, user: User) -> Actor:
        return cls(user.id, is_admin=user.role == ADMIN)


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A login's or a refresh's outcome: the user, and the refresh token that replaces the one used."""

    user: User
    refresh_token: str


class _CursorKey(BaseModel):
    created_at: UTCDatetime
    id: str


class UsersService:
    def __init__(
        self,
        stores: UserStores,
        passwords: PasswordHashing,
        clock: Clock = utcnow,
        *,
        refresh_expires_in: int = REFRESH_TOKEN_EXPIRES_IN,
    ) -> None:
        self.stores = stores
        self.passwords = passwords
        self.clock = clock
        self.refresh_expires_in = timedelta(seconds=refresh_expires_in)

    async def register(self, data: UserCreate, *, role: str = "user") -> User:
        user = User(
            id=new_id(),
            name=data.name,
            email=data.email,
            email_normalized=email_key(data.email),
            password_hash=await self.passwords.hash(data.password),
            role=role,
            created_at=self.clock(),
            token_version=0,
        )
        # No look-up first: the unique constraint decides, even between concurrent registrations.
        async with self.stores.writing() as users:
            return await users.add(user)

    # --- signing in and out -----------------------------------------------------------------------

    async def login(self, email: str, password: str) -> SignedIn:
        """Check the password and start a family of refresh tokens; an old hash is upgraded on the way."""
        user = await self.authenticate(email, password)
        rehash = self.passwords.needs_rehash(user.password_hash)
        new_hash = await self.passwords.hash(password) if rehash else None
        refresh_token = new_refresh_token()
        async with self.stores.writing() as users:
            # Held until the refresh token is stored: a password change or a deletion waits for this
            # login, or this login sees it and fails, rather than the new tokens outliving the change.
            current = await users.hold(user.id)
            if current is None or current.password_hash != user.password_hash:
                raise InvalidCredentials  # deleted, or its password changed, since it was checked
            if new_hash is not None:
                current.password_hash = new_hash
            await self._store_refresh_token(users, current, refresh_token, family_id=new_id())
        return SignedIn(current, refresh_token)

    async def authenticate(self, email: str, password: str) -> User:
        """The user whose email and password these are; InvalidCredentials, in the same time, otherwise."""
        async with self.stores.reading() as users:
            user = await users.get_by_email(lookup_key(email))
        if user is None:
            await self.passwords.dummy_verify(password)
            raise InvalidCredentials
        if not await self.passwords.verify(user.password_hash, password):
            raise InvalidCredentials
        return user

    async def refresh(self, refresh_token: str) -> SignedIn:
        """Exchange a refresh token for its successor in the same family.

        A token already exchanged that comes back was copied: the whole family ends, and both the
        thief and the user get 401 (the user logs in again).
        """
        now = self.clock()
        successor = new_refresh_token()
        async with self.stores.writing() as users:
            found = await users.refresh_token(refresh_digest(refresh_token))
            if found is None or found.expires_at <= now:
                raise InvalidRefreshToken
            # The user's row first, as every change of the user takes it first: no deadlock.
            user = await users.hold(found.user_id)
            if user is None:
                raise InvalidRefreshToken  # deleted meanwhile, and its refresh tokens with it
            reused = not await users.rotate_refresh_token(found.id, now)
            if reused:
                await users.revoke_refresh_family(found.family_id)
            else:
                await self._store_refresh_token(users, user, successor, family_id=found.family_id)
        if reused:
            # Raised after the commit, so the family's revocation stands.
            logger.warning("a rotated refresh token was used again: user %s's family ended", user.id)
            raise InvalidRefreshToken
        return SignedIn(user, successor)

    async def logout(self, credentials: Credentials) -> None:
        """End every token of the caller: access tokens by their version, refresh tokens by deletion."""
        async with self.stores.writing() as users:
            user = await self._caller(users, credentials)
            await users.end_tokens(user)
            # In the same transaction: the other services end the user's earlier tokens when it arrives.
            await users.announce_changed(user)

    # --- users --------------------------------------------------------------------------------------

    async def me(self, credentials: Credentials) -> User:
        async with self.stores.reading() as users:
            return await self._caller(users, credentials)

    async def get(self, credentials: Credentials, user_id: str) -> User:
        """The user `user_id`, if the caller may see it; anyone else's id is "not found", not "forbidden"."""
        async with self.stores.reading() as users:
            actor = Actor.of(await self._caller(users, credentials))
            return await self._visible(users, actor, user_id)

    async def list_page(
        self, credentials: Credentials, *, limit: int, cursor: str | None = None
    ) -> tuple[list[User], str | None]:
        """One page in (created_at, id) order and the cursor of the next, None on the last page."""
        after = _decode_key(cursor) if cursor else None
        async with self.stores.reading() as store:
            if not Actor.of(await self._caller(store, credentials)).is_admin:
                raise AdministratorRequired
            users = list(await store.page(limit=limit + 1, after=after))
        if len(users) <= limit:
            return users, None
        last = users[limit - 1]
        return users[:limit], encode_cursor({"created_at": last.created_at, "id": last.id})

    async def update(self, credentials: Credentials, user_id: str, data: UserUpdate) -> User:
        if data.role is not None:
            # Refused before any password is hashed; a stranger's id is still "not found".
            async with self.stores.reading() as users:
                actor = Actor.of(await self._caller(users, credentials))
                await self._visible(users, actor, user_id)
            if not actor.is_admin:
                raise RoleChangeForbidden
        # Checked and hashed before the transaction, which then holds only the reads and the writes.
        verified = await self._own_password_checked(credentials, user_id, data)
        new_hash = await self.passwords.hash(data.password) if data.password is not None else None
        async with self.stores.writing() as users:
            # Taken before the caller is read: a concurrent demotion is then seen, not raced.
            admins = await users.lock_admins() if data.role is not None else []
            actor = Actor.of(await self._caller(users, credentials))
            user = await self._visible(users, actor, user_id)
            if verified is not None and user.password_hash != verified:
                raise CurrentPasswordRequired  # changed since it was checked: that password is not current
            ends_tokens = new_hash is not None
            if data.role is not None and data.role != user.role:
                if not actor.is_admin:
                    raise RoleChangeForbidden
                if user.role == ADMIN and admins == [user.id]:
                    raise LastAdministrator
                user.role = data.role
                ends_tokens = True
            if data.name is not None:
                user.name = data.name
            if data.email is not None:
                user.email = data.email
                user.email_normalized = email_key(data.email)
            if new_hash is not None:
                user.password_hash = new_hash
            saved = await users.save(user)
            if ends_tokens:
                await users.end_tokens(saved)
                # After the write that locked the row, so one user's events leave in commit order.
                await users.announce_changed(saved)
            return saved

    async def _own_password_checked(
        self, credentials: Credentials, user_id: str, data: UserUpdate
    ) -> str | None:
        """For a new password of the caller's own: the hash `current_password` was verified against;
        CurrentPasswordRequired when it is missing or wrong. None for any other change."""
        if data.password is None:
            return None
        async with self.stores.reading() as users:
            caller = await self._caller(users, credentials)
        if caller.id != user_id:
            return None  # an administrator setting someone else's password
        if data.current_password is None or not await self.passwords.verify(
            caller.password_hash, data.current_password
        ):
            raise CurrentPasswordRequired
        return caller.password_hash

    async def delete(self, credentials: Credentials, user_id: str) -> None:
        async with self.stores.writing() as users:
            admins = await users.lock_admins()
            actor = Actor.of(await self._caller(users, credentials))
            user = await self._visible(users, actor, user_id)
            if user.role == ADMIN and admins == [user.id]:
                raise LastAdministrator
            user_id, role = user.id, user.role
            # Its refresh tokens go with it (ON DELETE CASCADE); its access tokens name nobody now.
            await users.delete(user)
            await users.announce_deleted(user_id, role)

    async def ensure_admin(self, *, email: str, password: str, name: str) -> User | None:
        """Create the administrator `email` unless that address is taken; the new user, or None."""
        async with self.stores.reading() as users:
            if await users.get_by_email(lookup_key(email)) is not None:
                return None
        data = UserCreate(name=name, email=email, password=password)
        try:
            return await self.register(data, role=ADMIN)
        except EmailTaken:  # another process, starting at the same time, created it first
            return None

    # --- helpers ------------------------------------------------------------------------------------

    @staticmethod
    async def _caller(users: UserStore, credentials: Credentials) -> User:
        """The caller's row, while their token is good: the user exists and the token's version is current."""
        user_id = credentials.user_id
        # A subject no id can be (a NUL, an unpaired surrogate, too long) is never sent to the database,
        # which would fail on it rather than find nobody.
        if len(user_id) > MAX_USER_ID_LENGTH or unstorable(user_id, ()):
            raise TokenRevoked
        user = await users.get(user_id)
        if user is None or credentials.version != user.token_version:
            raise TokenRevoked
        return user

    @staticmethod
    async def _visible(users: UserStore, actor: Actor, user_id: str) -> User:
        user = await users.get(user_id) if actor.is_admin or actor.user_id == user_id else None
        if user is None:
            raise UserNotFound(user_id)
        return user

    async def _store_refresh_token(self, users: UserStore, user: User, token: str, *, family_id: str) -> None:
        now = self.clock()
        await users.purge_refresh_tokens(user.id, expired_at=now)
        await users.add_refresh_token(
            RefreshToken(
                id=new_id(),
                digest=refresh_digest(token),
                user_id=user.id,
                family_id=family_id,
                created_at=now,
                expires_at=now + self.refresh_expires_in,
                rotated_at=None,
            )
        )


def _decode_key(cursor: str) -> tuple[datetime, str]:
    try:
        key = _CursorKey.model_validate(decode_cursor(cursor))
    except ValidationError:
        raise InvalidCursor from None
    return key.created_at, key.id
