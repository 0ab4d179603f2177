"""The service's rules, with an in-memory store and a fixed clock handed in."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import pytest

from starling_core.pagination import InvalidCursor
from starling_users import errors
from starling_users.models import ADMIN, RefreshToken, User
from starling_users.schemas import UserCreate, UserUpdate
from starling_users.service import UsersService
from starling_users.tokens import Credentials

from .helpers import PASSWORD, fast_passwords

START = datetime(2026, 1, 1, tzinfo=UTC)


class FakeUsers:
    """The store's contract in memory, uniqueness of the email key included."""

    def __init__(self) -> None:
        self.rows: dict[str, User] = {}
        self.refresh_tokens: dict[str, RefreshToken] = {}
        self.announced: list[tuple[str, str, str]] = []  # (type, user id, role), as the outbox would hold

    async def get(self, ident: str) -> User | None:
        assert "\x00" not in ident, "PostgreSQL would fail on a NUL rather than find nobody"
        return self.rows.get(ident)

    async def get_by_email(self, email_normalized: str) -> User | None:
        return next((u for u in self.rows.values() if u.email_normalized == email_normalized), None)

    async def hold(self, user_id: str) -> User | None:
        return await self.get(user_id)

    async def lock_admins(self) -> list[str]:
        return sorted(u.id for u in self.rows.values() if u.role == ADMIN)

    async def add(self, instance: User) -> User:
        return await self.save(instance)

    async def save(self, instance: User) -> User:
        other = await self.get_by_email(instance.email_normalized)
        if other is not None and other.id != instance.id:
            raise errors.EmailTaken
        self.rows[instance.id] = instance
        return instance

    async def end_tokens(self, user: User) -> None:
        user.token_version += 1
        self.refresh_tokens = {k: t for k, t in self.refresh_tokens.items() if t.user_id != user.id}

    async def announce_changed(self, user: User) -> None:
        self.announced.append(("user.changed", user.id, user.role))

    async def announce_deleted(self, user_id: str, role: str) -> None:
        self.announced.append(("user.deleted", user_id, role))

    async def delete(self, instance: User) -> None:
        del self.rows[instance.id]
        self.refresh_tokens = {k: t for k, t in self.refresh_tokens.items() if t.user_id != instance.id}

    async def page(self, *, limit: int, after: tuple[datetime, str] | None = None) -> Sequence[User]:
        ordered = sorted(self.rows.values(), key=lambda u: (u.created_at, u.id))
        return [u for u in ordered if after is None or (u.created_at, u.id) > after][:limit]

    async def add_refresh_token(self, token: RefreshToken) -> None:
        self.refresh_tokens[token.id] = token

    async def refresh_token(self, digest: str) -> RefreshToken | None:
        return next((t for t in self.refresh_tokens.values() if t.digest == digest), None)

    async def rotate_refresh_token(self, token_id: str, at: datetime) -> bool:
        token = self.refresh_tokens.get(token_id)
        if token is None or token.rotated_at is not None:
            return False
        token.rotated_at = at
        return True

    async def revoke_refresh_family(self, family_id: str) -> None:
        self.refresh_tokens = {k: t for k, t in self.refresh_tokens.items() if t.family_id != family_id}

    async def purge_refresh_tokens(self, user_id: str, *, expired_at: datetime) -> None:
        self.refresh_tokens = {
            k: t for k, t in self.refresh_tokens.items() if t.user_id != user_id or t.expires_at > expired_at
        }

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[FakeUsers]:
        yield self

    writing = reading


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
def clock() -> Ticking:
    return Ticking()


@pytest.fixture
def service(users: FakeUsers, clock: Ticking) -> UsersService:
    return UsersService(users, fast_passwords(), clock=clock, refresh_expires_in=3600)


def new(email: str = "ada@example.com") -> UserCreate:
    return UserCreate(name="Ada", email=email, password=PASSWORD)


def holding(user: User) -> Credentials:
    """The credentials of a token issued to `user` now."""
    return Credentials(user.id, user.token_version)


# --- registration and email keys ------------------------------------------------------------------


async def test_register_keys_the_email_and_hashes_the_password(service: UsersService) -> None:
    user = await service.register(new("Ada@Example.COM"))
    assert user.email == "Ada@Example.COM"
    assert user.email_normalized == "ada@example.com"
    assert user.password_hash.startswith("$argon2id$")
    assert (user.role, user.token_version) == ("user", 0)
    assert user.created_at == START + timedelta(seconds=1)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ada@example.com", "ADA@example.com"),
        ("jos\N{LATIN SMALL LETTER E WITH ACUTE}@example.com", "jose\N{COMBINING ACUTE ACCENT}@example.com"),
        ("ada@b\N{LATIN SMALL LETTER U WITH DIAERESIS}cher.de", "ada@xn--bcher-kva.de"),
        ("ada@example.com", "\uff41\uff44\uff41@example.com"),  # fullwidth "ada"
        ("ada@example.com", "ada@\uff45xample.com"),  # fullwidth "e" in the domain
        ("strasse@example.com", "STRA\N{LATIN SMALL LETTER SHARP S}E@example.com"),
    ],
    ids=["case", "nfc-nfd", "idn-punycode", "fullwidth-local", "fullwidth-domain", "case-folding"],
)
async def test_register_refuses_another_spelling_of_a_taken_email(
    service: UsersService, first: str, second: str
) -> None:
    await service.register(new(first))
    with pytest.raises(errors.EmailTaken):
        await service.register(new(second))


# --- logging in -----------------------------------------------------------------------------------


async def test_login_in_any_email_spelling_gives_a_refresh_token_stored_only_as_a_digest(
    service: UsersService, users: FakeUsers
) -> None:
    user = await service.register(new())
    signed_in = await service.login(" ADA@example.com ", PASSWORD)
    assert signed_in.user.id == user.id
    [stored] = users.refresh_tokens.values()
    assert stored.user_id == user.id
    assert signed_in.refresh_token not in (stored.digest, stored.id)
    assert stored.expires_at == stored.created_at + timedelta(hours=1)


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "wrong!!!"), ("x@example.com", PASSWORD), ("not an address", PASSWORD)],
)
async def test_login_refuses_wrong_password_and_unknown_email(
    service: UsersService, email: str, password: str
) -> None:
    await service.register(new())
    with pytest.raises(errors.InvalidCredentials):
        await service.login(email, password)


async def test_an_account_stored_before_these_email_rules_still_logs_in(
    service: UsersService, users: FakeUsers
) -> None:
    legacy = await service.register(new())
    legacy.email, legacy.email_normalized = "Bo@Corp.local", "bo@corp.local"  # as revision 0003 left it
    assert (await service.login("bo@CORP.local", PASSWORD)).user is legacy
    assert await service.ensure_admin(email="Bo@Corp.local", password=PASSWORD, name="Bo") is None


# --- who the caller is ----------------------------------------------------------------------------


async def test_a_token_of_an_older_version_or_of_nobody_is_revoked(service: UsersService) -> None:
    user = await service.register(new())
    assert await service.me(holding(user)) is user
    for credentials in [
        Credentials(user.id, user.token_version + 1),
        Credentials(user.id, user.token_version - 1),
        Credentials(user.id, None),
        Credentials("nobody", 0),
    ]:
        with pytest.raises(errors.TokenRevoked):
            await service.me(credentials)


@pytest.mark.parametrize("sub", ["ab\x00cd", "\ud800", "9" * 10_000], ids=["nul", "surrogate", "long"])
async def test_a_subject_no_id_can_be_is_revoked_without_asking_the_store(
    service: UsersService, sub: str
) -> None:
    with pytest.raises(errors.TokenRevoked):
        await service.me(Credentials(sub, 0))


async def test_users_see_themselves_and_stored_admins_see_everyone(service: UsersService) -> None:
    user = await service.register(new())
    admin = await service.register(new("root@example.com"), role=ADMIN)
    other = await service.register(new("other@example.com"))
    assert await service.get(holding(user), user.id) is user
    assert await service.get(holding(admin), user.id) is user
    with pytest.raises(errors.UserNotFound, match=f"User {user.id} not found"):
        await service.get(holding(other), user.id)


# --- changes ---------------------------------------------------------------------------------------


async def test_only_stored_admins_change_roles(service: UsersService) -> None:
    user = await service.register(new())
    admin = await service.register(new("root@example.com"), role=ADMIN)
    with pytest.raises(errors.RoleChangeForbidden):
        await service.update(holding(user), user.id, UserUpdate(role="admin"))
    promoted = await service.update(holding(admin), user.id, UserUpdate(role="admin"))
    assert promoted.role == "admin"


async def test_a_role_change_and_a_password_change_end_the_users_tokens(service: UsersService) -> None:
    user = await service.register(new())
    admin = await service.register(new("root@example.com"), role=ADMIN)

    before_promotion = holding(user)
    await service.update(holding(admin), user.id, UserUpdate(role="admin"))
    with pytest.raises(errors.TokenRevoked):
        await service.me(before_promotion)

    before_password = holding(user)
    await service.update(
        before_password, user.id, UserUpdate(password="a new password", current_password=PASSWORD)
    )
    with pytest.raises(errors.TokenRevoked):
        await service.me(before_password)


async def test_a_name_email_or_unchanged_role_keeps_the_tokens(service: UsersService) -> None:
    user = await service.register(new())
    admin = await service.register(new("root@example.com"), role=ADMIN)
    credentials = holding(user)
    updated = await service.update(credentials, user.id, UserUpdate(name="Ada L.", email="New@Example.com"))
    await service.update(holding(admin), user.id, UserUpdate(role="user"))
    assert (updated.name, updated.email_normalized) == ("Ada L.", "new@example.com")
    assert await service.me(credentials) is user


async def test_update_to_a_taken_email_raises(service: UsersService) -> None:
    await service.register(new("taken@example.com"))
    user = await service.register(new())
    with pytest.raises(errors.EmailTaken):
        await service.update(holding(user), user.id, UserUpdate(email="TAKEN@example.com"))


async def test_the_only_admin_can_neither_demote_nor_delete_themself(service: UsersService) -> None:
    admin = await service.register(new("root@example.com"), role=ADMIN)
    with pytest.raises(errors.LastAdministrator):
        await service.update(holding(admin), admin.id, UserUpdate(role="user"))
    with pytest.raises(errors.LastAdministrator):
        await service.delete(holding(admin), admin.id)
    assert admin.role == ADMIN


async def test_one_of_two_admins_can_step_down(service: UsersService, users: FakeUsers) -> None:
    first = await service.register(new("root@example.com"), role=ADMIN)
    second = await service.register(new("second@example.com"), role=ADMIN)
    demoted = await service.update(holding(first), first.id, UserUpdate(role="user"))
    assert demoted.role == "user"
    with pytest.raises(errors.LastAdministrator):
        await service.delete(holding(second), second.id)
    assert set(users.rows) == {first.id, second.id}


async def test_delete_removes_the_user_and_ends_its_tokens(service: UsersService, users: FakeUsers) -> None:
    user = await service.register(new())
    await service.login("ada@example.com", PASSWORD)
    credentials = holding(user)
    await service.delete(credentials, user.id)
    assert (users.rows, users.refresh_tokens) == ({}, {})
    with pytest.raises(errors.TokenRevoked):
        await service.me(credentials)


async def test_every_change_that_ends_tokens_is_announced_and_no_other(
    service: UsersService, users: FakeUsers
) -> None:
    user = await service.register(new())
    admin = await service.register(new("root@example.com"), role=ADMIN)

    await service.update(holding(user), user.id, UserUpdate(name="Ada L."))
    await service.update(holding(admin), user.id, UserUpdate(role="admin"))
    await service.update(
        holding(user), user.id, UserUpdate(password="a new password", current_password=PASSWORD)
    )
    await service.logout(holding(user))
    await service.delete(holding(admin), user.id)

    assert users.announced == [
        ("user.changed", user.id, "admin"),
        ("user.changed", user.id, "admin"),
        ("user.changed", user.id, "admin"),
        ("user.deleted", user.id, "admin"),
    ]


# --- lists -----------------------------------------------------------------------------------------


async def test_list_page_follows_cursors_to_the_end(service: UsersService) -> None:
    admin = await service.register(new("root@example.com"), role=ADMIN)
    ids = [admin.id] + [(await service.register(new(f"u{n}@example.com"))).id for n in range(3)]
    first, cursor = await service.list_page(holding(admin), limit=2)
    assert cursor is not None
    second, last_cursor = await service.list_page(holding(admin), limit=2, cursor=cursor)
    assert [u.id for u in first + second] == ids
    assert last_cursor is None


async def test_list_page_is_for_stored_admins_only(service: UsersService) -> None:
    user = await service.register(new())
    with pytest.raises(errors.AdministratorRequired):
        await service.list_page(holding(user), limit=2)


@pytest.mark.parametrize("cursor", ["%%%", "e30", "eyJjcmVhdGVkX2F0IjoieCIsImlkIjoxfQ"])
async def test_list_page_refuses_a_cursor_it_did_not_write(service: UsersService, cursor: str) -> None:
    admin = await service.register(new("root@example.com"), role=ADMIN)
    with pytest.raises(InvalidCursor):
        await service.list_page(holding(admin), limit=2, cursor=cursor)


# --- refresh tokens and logout ----------------------------------------------------------------------


async def test_a_refresh_token_is_exchanged_once_for_a_successor(service: UsersService) -> None:
    await service.register(new())
    first = await service.login("ada@example.com", PASSWORD)
    second = await service.refresh(first.refresh_token)
    third = await service.refresh(second.refresh_token)
    assert len({first.refresh_token, second.refresh_token, third.refresh_token}) == 3
    assert third.user.id == first.user.id


async def test_a_reused_refresh_token_ends_its_whole_family_and_no_other(
    service: UsersService, users: FakeUsers
) -> None:
    await service.register(new())
    stolen = await service.login("ada@example.com", PASSWORD)
    other_device = await service.login("ada@example.com", PASSWORD)
    successor = await service.refresh(stolen.refresh_token)

    with pytest.raises(errors.InvalidRefreshToken):
        await service.refresh(stolen.refresh_token)
    with pytest.raises(errors.InvalidRefreshToken):
        await service.refresh(successor.refresh_token)
    assert await service.refresh(other_device.refresh_token)


async def test_an_expired_or_unknown_refresh_token_is_refused(service: UsersService, clock: Ticking) -> None:
    await service.register(new())
    signed_in = await service.login("ada@example.com", PASSWORD)
    with pytest.raises(errors.InvalidRefreshToken):
        await service.refresh("not-a-token-we-issued")
    clock.now += timedelta(hours=1)
    with pytest.raises(errors.InvalidRefreshToken):
        await service.refresh(signed_in.refresh_token)


async def test_logout_ends_the_callers_access_and_refresh_tokens(service: UsersService) -> None:
    user = await service.register(new())
    signed_in = await service.login("ada@example.com", PASSWORD)
    credentials = holding(user)
    await service.logout(credentials)
    with pytest.raises(errors.TokenRevoked):
        await service.me(credentials)
    with pytest.raises(errors.InvalidRefreshToken):
        await service.refresh(signed_in.refresh_token)


async def test_a_password_change_ends_refresh_tokens_too(service: UsersService) -> None:
    user = await service.register(new())
    signed_in = await service.login("ada@example.com", PASSWORD)
    await service.update(
        holding(user), user.id, UserUpdate(password="a new password", current_password=PASSWORD)
    )
    with pytest.raises(errors.InvalidRefreshToken):
        await service.refresh(signed_in.refresh_token)


# --- the first admin --------------------------------------------------------------------------------


async def test_ensure_admin_creates_once(service: UsersService, users: FakeUsers) -> None:
    first = await service.ensure_admin(email="root@example.com", password=PASSWORD, name="Root")
    second = await service.ensure_admin(email="ROOT@example.com", password=PASSWORD, name="Root")
    assert first is not None
    assert first.role == "admin"
    assert second is None
    assert len(users.rows) == 1
