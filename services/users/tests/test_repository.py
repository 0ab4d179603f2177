"""The repository's SQL, against the test's database transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from starling_users.errors import EmailTaken
from starling_users.models import User, new_id
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


async def test_a_password_hash_is_replaced_only_while_it_is_the_one_read(db_session: AsyncSession) -> None:
    repository = UserRepository(db_session)
    ada = await repository.add(user("ada@example.com"))
    assert not await repository.replace_password_hash(ada.id, "$argon2id$changed-meanwhile", "$argon2id$new")
    assert await repository.replace_password_hash(ada.id, "$argon2id$fake", "$argon2id$new")
    await db_session.refresh(ada)
    assert ada.password_hash == "$argon2id$new"
