"""The users service's rules. Collaborators come in as arguments, so tests hand in fakes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, ValidationError

from starling_core.pagination import InvalidCursor, decode_cursor, encode_cursor
from starling_core.tokens import JWTConfig, issue_token
from starling_users.errors import EmailTaken, InvalidCredentials, RoleChangeForbidden, UserNotFound
from starling_users.models import User, new_id, normalize_email
from starling_users.schemas import UserCreate, UserUpdate

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class UserStore(Protocol):
    """What the service needs from storage; `UserRepository` is the real one."""

    async def get(self, ident: str) -> User | None: ...
    async def get_by_email(self, email_normalized: str) -> User | None: ...
    async def add(self, instance: User) -> User: ...  # raises EmailTaken
    async def save(self, instance: User) -> User: ...  # raises EmailTaken
    async def replace_password_hash(self, user_id: str, old: str, new: str) -> bool: ...
    async def delete(self, instance: User) -> None: ...
    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]: ...


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
    """Who is asking: the token's subject, and whether it holds `users:admin`."""

    user_id: str
    is_admin: bool = False


class _CursorKey(BaseModel):
    created_at: AwareDatetime
    id: str


class UsersService:
    def __init__(self, stores: UserStores, passwords: PasswordHashing, clock: Clock = utcnow) -> None:
        self.stores = stores
        self.passwords = passwords
        self.clock = clock

    async def register(self, data: UserCreate, *, role: str = "user") -> User:
        user = User(
            id=new_id(),
            name=data.name,
            email=data.email,
            email_normalized=normalize_email(data.email),
            password_hash=await self.passwords.hash(data.password),
            role=role,
            created_at=self.clock(),
        )
        # No look-up first: the unique constraint decides, even between concurrent registrations.
        async with self.stores.writing() as users:
            return await users.add(user)

    async def authenticate(self, email: str, password: str) -> User:
        async with self.stores.reading() as users:
            user = await users.get_by_email(normalize_email(email))
        if user is None:
            await self.passwords.dummy_verify(password)
            raise InvalidCredentials
        if not await self.passwords.verify(user.password_hash, password):
            raise InvalidCredentials
        if self.passwords.needs_rehash(user.password_hash):
            new_hash = await self.passwords.hash(password)
            # Guarded by the hash it replaces: a password changed meanwhile is not overwritten.
            async with self.stores.writing() as users:
                if await users.replace_password_hash(user.id, user.password_hash, new_hash):
                    user.password_hash = new_hash
        return user

    async def get(self, actor: Actor, user_id: str) -> User:
        """The user `user_id`, if `actor` may see it; anyone else's id is "not found", never "forbidden"."""
        async with self.stores.reading() as users:
            return await self._visible(users, actor, user_id)

    async def list_page(self, *, limit: int, cursor: str | None = None) -> tuple[list[User], str | None]:
        """One page in (created_at, id) order and the cursor of the next, None on the last page."""
        after = _decode_key(cursor) if cursor else None
        async with self.stores.reading() as store:
            users = list(await store.page(limit=limit + 1, after=after))
        if len(users) <= limit:
            return users, None
        last = users[limit - 1]
        return users[:limit], encode_cursor({"created_at": last.created_at, "id": last.id})

    async def update(self, actor: Actor, user_id: str, data: UserUpdate) -> User:
        if data.role is not None and not actor.is_admin:
            async with self.stores.reading() as users:
                await self._visible(users, actor, user_id)  # a stranger's id is still "not found"
            raise RoleChangeForbidden
        # Hashed before the transaction, which then holds only the read and the write.
        new_hash = await self.passwords.hash(data.password) if data.password is not None else None
        async with self.stores.writing() as users:
            user = await self._visible(users, actor, user_id)
            if data.name is not None:
                user.name = data.name
            if data.email is not None:
                user.email = data.email
                user.email_normalized = normalize_email(data.email)
            if new_hash is not None:
                user.password_hash = new_hash
            if data.role is not None:
                user.role = data.role
            return await users.save(user)

    async def delete(self, actor: Actor, user_id: str) -> None:
        async with self.stores.writing() as users:
            await users.delete(await self._visible(users, actor, user_id))

    async def ensure_admin(self, *, email: str, password: str, name: str) -> User | None:
        """Create the administrator `email` unless that address is taken; the new user, or None."""
        async with self.stores.reading() as users:
            if await users.get_by_email(normalize_email(email)) is not None:
                return None
        data = UserCreate(name=name, email=email, password=password)
        try:
            return await self.register(data, role="admin")
        except EmailTaken:  # another process, starting at the same time, created it first
            return None

    @staticmethod
    async def _visible(users: UserStore, actor: Actor, user_id: str) -> User:
        user = await users.get(user_id) if actor.is_admin or actor.user_id == user_id else None
        if user is None:
            raise UserNotFound(user_id)
        return user


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int
    scopes: tuple[str, ...]


class AccessTokens:
    """Signs the access token a user gets at login: its role's scopes, for `expires_in` seconds."""

    def __init__(self, jwt: JWTConfig, *, expires_in: int, role_scopes: Mapping[str, Sequence[str]]) -> None:
        self.jwt = jwt
        self.expires_in = expires_in
        self.role_scopes = {role: tuple(scopes) for role, scopes in role_scopes.items()}

    def issue(self, user: User) -> AccessToken:
        scopes = self.role_scopes[user.role]
        token = issue_token(self.jwt, sub=user.id, scopes=scopes, expires_in=self.expires_in)
        return AccessToken(token=token, expires_in=self.expires_in, scopes=scopes)


def _decode_key(cursor: str) -> tuple[datetime, str]:
    try:
        key = _CursorKey.model_validate(decode_cursor(cursor))
    except ValidationError:
        raise InvalidCursor from None
    return key.created_at, key.id
