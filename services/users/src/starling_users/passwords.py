"""Argon2id password hashing, run off the event loop."""

from __future__ import annotations

from functools import cached_property

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from starling_users.settings import UsersSettings

_DUMMY_PASSWORD = "starling-dummy-password-for-timing"


class Passwords:
    """Hash, verify and rehash passwords; `hasher` decides the Argon2id parameters."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()

    @classmethod
    def from_settings(cls, settings: UsersSettings) -> Passwords:
        return cls(
            PasswordHasher(
                time_cost=settings.password_time_cost,
                memory_cost=settings.password_memory_cost,
                parallelism=settings.password_parallelism,
            )
        )

    async def hash(self, password: str) -> str:
        # Argon2 is deliberately slow; in a thread it does not stall every other request.
        return await run_in_threadpool(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await run_in_threadpool(self._verify, password_hash, password)

    async def dummy_verify(self, password: str) -> None:
        """Spend the time a real verification would, so an unknown email answers no faster."""
        await self.verify(self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    @cached_property
    def _dummy_hash(self) -> str:
        # Made with this hasher's own parameters, so the dummy costs what a real hash does.
        return self.hasher.hash(_DUMMY_PASSWORD)
