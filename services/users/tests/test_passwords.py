"""Argon2id hashing, verification and rehash on login."""

from __future__ import annotations

from argon2 import PasswordHasher

from starling_users.models import User
from starling_users.passwords import Passwords
from starling_users.schemas import UserCreate
from starling_users.service import UsersService

from .helpers import PASSWORD, fast_passwords
from .test_service import FakeUsers


async def test_hash_is_argon2id_and_salted() -> None:
    passwords = fast_passwords()
    first, second = await passwords.hash(PASSWORD), await passwords.hash(PASSWORD)
    assert first.startswith("$argon2id$")
    assert first != second


async def test_verify_accepts_the_password_and_refuses_others() -> None:
    passwords = fast_passwords()
    password_hash = await passwords.hash(PASSWORD)
    assert await passwords.verify(password_hash, PASSWORD)
    assert not await passwords.verify(password_hash, "something else")


async def test_verify_refuses_a_malformed_hash() -> None:
    assert not await fast_passwords().verify("not-a-hash", PASSWORD)


async def test_dummy_verify_runs_against_a_real_hash() -> None:
    passwords = fast_passwords()
    await passwords.dummy_verify(PASSWORD)
    assert passwords._dummy_hash.startswith("$argon2id$")


def test_default_parameters_are_argon2_cffis() -> None:
    hasher = Passwords().hasher
    defaults = PasswordHasher()
    assert (hasher.time_cost, hasher.memory_cost, hasher.parallelism) == (
        defaults.time_cost,
        defaults.memory_cost,
        defaults.parallelism,
    )


async def test_login_rehashes_a_password_hashed_with_old_parameters() -> None:
    users = FakeUsers()
    old = Passwords(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    user: User = await UsersService(users, old).register(
        UserCreate(name="Ada", email="ada@example.com", password=PASSWORD)
    )
    old_hash = user.password_hash
    stronger = Passwords(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
    assert stronger.needs_rehash(old_hash)

    await UsersService(users, stronger).login("ada@example.com", PASSWORD)

    new_hash = users.rows[user.id].password_hash
    assert new_hash != old_hash
    assert not stronger.needs_rehash(new_hash)
    assert await stronger.verify(new_hash, PASSWORD)
