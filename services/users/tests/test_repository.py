"""The repository's SQL, against the test's database transaction."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from starling_users.errors import EmailTaken
from starling_users.models import RefreshToken, User, new_id
from starling_users.repository import UserRepository

START = datetime(2026, 1, 1, tzinfo=UTC)


def user(email: str, created_at: datetime = START, user_id: str | None = None) -> User:
    return User(
        id=user_id or new_id(),
        name="Someone",
        email=email,
        email_normalized=email.lower(),
        password_hash="$argon2id$fake",
        role="user",
        created_at=created_at,
    )


async def test_get_by_email_finds_the_normalized_address(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    added = await repository.add(user("Ada@Example.com"))
    assert await repository.get_by_email("ada@example.com") is added
    assert await repository.get_by_email("nobody@example.com") is None


async def test_database_refuses_a_second_normalized_email(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    await repository.add(user("ada@example.com"))
    with pytest.raises(EmailTaken):
        await repository.add(user("ADA@example.com".lower()))
    # The failed insert was undone in its savepoint: the session still works.
    assert await repository.count() == 1


async def test_save_to_a_taken_email_raises(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    await repository.add(user("taken@example.com"))
    moving = await repository.add(user("ada@example.com"))
    moving.email_normalized = "taken@example.com"
    with pytest.raises(EmailTaken):
        await repository.save(moving)


async def test_created_at_comes_back_timezone_aware(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    added = await repository.add(user("ada@example.com"))
    db_session.expunge_all()
    loaded = await repository.get(added.id)
    assert loaded is not None
    assert loaded.created_at == START
    assert loaded.created_at.tzinfo is not None


async def test_page_is_keyset_ordered_by_created_at_then_id(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    later = await repository.add(user("c@example.com", START + timedelta(seconds=1)))
    tie_b = await repository.add(user("b@example.com", START, user_id="b"))
    tie_a = await repository.add(user("a@example.com", START, user_id="a"))

    assert [u.id for u in await repository.page(limit=10)] == [tie_a.id, tie_b.id, later.id]
    assert [u.id for u in await repository.page(limit=10, after=(START, "a"))] == [tie_b.id, later.id]
    assert [u.id for u in await repository.page(limit=1, after=(START, "b"))] == [later.id]


async def test_delete_removes_the_row(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    added = await repository.add(user("ada@example.com"))
    await repository.delete(added)
    assert await repository.get(added.id) is None


def refresh_token(owner: User, family_id: str = "family-1", *, expires_at: datetime = START) -> RefreshToken:
    return RefreshToken(
        id=new_id(),
        digest=secrets.token_hex(32),
        user_id=owner.id,
        family_id=family_id,
        created_at=START,
        expires_at=expires_at,
        rotated_at=None,
    )


async def refresh_ids(session: AsyncSession) -> set[str]:
    return set((await session.scalars(select(RefreshToken.id))).all())


async def test_end_tokens_moves_the_version_on_in_the_database_and_drops_refresh_tokens(
    db_session: AsyncSession,
) -> None:
    repository = UserRepository(db_session)
    ada = await repository.add(user("ada@example.com"))
    bo = await repository.add(user("bo@example.com"))
    kept = refresh_token(bo)
    for token in (refresh_token(ada), refresh_token(ada, "family-2"), kept):
        await repository.add_refresh_token(token)

    await repository.end_tokens(ada)
    await repository.end_tokens(ada)

    assert ada.token_version == 2
    db_session.expunge_all()
    stored = await repository.get(ada.id)
    assert stored is not None
    assert stored.token_version == 2
    assert await refresh_ids(db_session) == {kept.id}


async def test_lock_admins_lists_the_administrators_in_id_order(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    for user_id, role in [("c", "admin"), ("a", "admin"), ("b", "user")]:
        added = user(f"{user_id}@example.com", user_id=user_id)
        added.role = role
        await repository.add(added)
    assert await repository.lock_admins() == ["a", "c"]


async def test_a_refresh_token_is_found_by_digest_and_rotated_once(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    token = refresh_token(await repository.add(user("ada@example.com")))
    await repository.add_refresh_token(token)

    assert await repository.refresh_token(token.digest) is token
    assert await repository.refresh_token("0" * 64) is None
    assert await repository.rotate_refresh_token(token.id, START)
    assert not await repository.rotate_refresh_token(token.id, START)


async def test_a_family_is_revoked_whole_and_expired_tokens_are_purged(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    ada = await repository.add(user("ada@example.com"))
    stolen = [refresh_token(ada, "stolen"), refresh_token(ada, "stolen")]
    expired = refresh_token(ada, "old", expires_at=START - timedelta(seconds=1))
    current = refresh_token(ada, "current", expires_at=START + timedelta(days=1))
    for token in (*stolen, expired, current):
        await repository.add_refresh_token(token)

    await repository.revoke_refresh_family("stolen")
    await repository.purge_refresh_tokens(ada.id, expired_at=START)

    assert await refresh_ids(db_session) == {current.id}


async def test_deleting_a_user_deletes_its_refresh_tokens(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    ada = await repository.add(user("ada@example.com"))
    await repository.add_refresh_token(refresh_token(ada))
    await repository.delete(ada)
    assert await refresh_ids(db_session) == set()


async def test_hold_reads_the_user_or_none(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    ada = await repository.add(user("ada@example.com"))
    assert await repository.hold(ada.id) is ada
    assert await repository.hold("nobody") is None
