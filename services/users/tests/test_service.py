"""The service's rules, with an in-memory store and a fixed clock handed in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from starling_core.pagination import InvalidCursor
from starling_core.tokens import JWTConfig, decode_token
from starling_users.errors import EmailTaken, InvalidCredentials, RoleChangeForbidden, UserNotFound
from starling_users.models import User
from starling_users.schemas import UserCreate, UserUpdate
from starling_users.service import AccessTokens, Actor, UsersService

from .helpers import PASSWORD, fast_passwords

START = datetime(2026, 1, 1, tzinfo=UTC)


class FakeUsers:
    """The store's contract in memory, uniqueness of the normalized email included."""

    def __init__(self) -> None:
        self.rows: dict[str, User] = {}

    async def get(self, ident: str) -> User | None:
        return self.rows.get(ident)

    async def get_by_email(self, email_normalized: str) -> User | None:
        return next((u for u in self.rows.values() if u.email_normalized == email_normalized), None)

    async def add(self, instance: User) -> User:
        return await self.save(instance)

    async def save(self, instance: User) -> User:
        other = await self.get_by_email(instance.email_normalized)
        if other is not None and other.id != instance.id:
            raise EmailTaken
        self.rows[instance.id] = instance
        return instance

    async def replace_password_hash(self, user_id: str, old: str, new: str) -> bool:
        user = self.rows.get(user_id)
        if user is None or user.password_hash != old:
            return False
        user.password_hash = new
        return True

    async def delete(self, instance: User) -> None:
        del self.rows[instance.id]

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[FakeUsers]:
        yield self

    writing = reading

    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]:
        ordered = sorted(self.rows.values(), key=lambda u: (u.created_at, u.id))
        return [u for u in ordered if after is None or (u.created_at, u.id) > after][:limit]


class Ticking:
    """A clock that moves one second a call."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def users() -> FakeUsers:
    return FakeUsers()


@pytest.fixture
def service(users: FakeUsers) -> UsersService:
    return UsersService(users, fast_passwords(), clock=Ticking())


def new(email: str = "ada@example.com") -> UserCreate:
    return UserCreate(name="Ada", email=email, password=PASSWORD)


async def test_register_normalizes_the_email_and_hashes_the_password(service: UsersService) -> None:
    user = await service.register(new("Ada@Example.COM"))
    assert user.email == "Ada@Example.COM"
    assert user.email_normalized == "ada@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert user.role == "user"
    assert user.created_at == START + timedelta(seconds=1)


async def test_register_a_taken_email_raises(service: UsersService) -> None:
    await service.register(new("ada@example.com"))
    with pytest.raises(EmailTaken):
        await service.register(new("ADA@example.com"))


async def test_authenticate_accepts_the_right_password_in_any_email_case(service: UsersService) -> None:
    user = await service.register(new())
    assert await service.authenticate(" ADA@example.com ", PASSWORD) is user


@pytest.mark.parametrize(
    ("email", "password"), [("ada@example.com", "wrong!!!"), ("x@example.com", PASSWORD)]
)
async def test_authenticate_refuses_wrong_password_and_unknown_email(
    service: UsersService, email: str, password: str
) -> None:
    await service.register(new())
    with pytest.raises(InvalidCredentials):
        await service.authenticate(email, password)


async def test_users_see_themselves_and_admins_see_everyone(service: UsersService) -> None:
    user = await service.register(new())
    assert await service.get(Actor(user.id), user.id) is user
    assert await service.get(Actor("someone-else", is_admin=True), user.id) is user
    with pytest.raises(UserNotFound, match=f"User {user.id} not found"):
        await service.get(Actor("someone-else"), user.id)


async def test_only_admins_change_roles(service: UsersService) -> None:
    user = await service.register(new())
    with pytest.raises(RoleChangeForbidden):
        await service.update(Actor(user.id), user.id, UserUpdate(role="admin"))
    promoted = await service.update(Actor("root", is_admin=True), user.id, UserUpdate(role="admin"))
    assert promoted.role == "admin"


async def test_update_changes_only_the_fields_sent(service: UsersService) -> None:
    user = await service.register(new())
    old_hash = user.password_hash
    updated = await service.update(Actor(user.id), user.id, UserUpdate(email="New@Example.com"))
    assert (updated.name, updated.email, updated.email_normalized) == (
        "Ada",
        "New@Example.com",
        "new@example.com",
    )
    assert updated.password_hash == old_hash


async def test_update_to_a_taken_email_raises(service: UsersService) -> None:
    await service.register(new("taken@example.com"))
    user = await service.register(new())
    with pytest.raises(EmailTaken):
        await service.update(Actor(user.id), user.id, UserUpdate(email="taken@example.com"))


async def test_delete_removes_the_user(service: UsersService, users: FakeUsers) -> None:
    user = await service.register(new())
    await service.delete(Actor(user.id), user.id)
    assert users.rows == {}


async def test_list_page_follows_cursors_to_the_end(service: UsersService) -> None:
    ids = [(await service.register(new(f"u{n}@example.com"))).id for n in range(3)]
    first, cursor = await service.list_page(limit=2)
    assert cursor is not None
    second, last_cursor = await service.list_page(limit=2, cursor=cursor)
    assert [u.id for u in first + second] == ids
    assert last_cursor is None


@pytest.mark.parametrize("cursor", ["%%%", "e30", "eyJjcmVhdGVkX2F0IjoieCIsImlkIjoxfQ"])
async def test_list_page_refuses_a_cursor_it_did_not_write(service: UsersService, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await service.list_page(limit=2, cursor=cursor)


async def test_ensure_admin_creates_once(service: UsersService, users: FakeUsers) -> None:
    first = await service.ensure_admin(email="root@example.com", password=PASSWORD, name="Root")
    second = await service.ensure_admin(email="ROOT@example.com", password=PASSWORD, name="Root")
    assert first is not None
    assert first.role == "admin"
    assert second is None
    assert len(users.rows) == 1


def test_an_access_token_carries_the_scopes_of_the_users_role() -> None:
    config = JWTConfig("a-test-secret-of-at-least-32-bytes!", "a-test-secret-of-at-least-32-bytes!", "tests")
    tokens = AccessTokens(
        config, expires_in=60, role_scopes={"user": ["a:read"], "admin": ["a:read", "a:admin"]}
    )
    user = User(id="u1", role="admin")

    issued = tokens.issue(user)

    assert (issued.expires_in, issued.scopes) == (60, ("a:read", "a:admin"))
    claims = decode_token(config, issued.token)
    assert (claims.sub, claims.scopes) == ("u1", frozenset({"a:read", "a:admin"}))
