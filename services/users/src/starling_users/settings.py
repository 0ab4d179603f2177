"""The users service's settings: the shared ones plus its own, read from `STARLING_USERS_*`."""

from __future__ import annotations

from argon2 import profiles
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from starling_core.settings import ServiceSettings

# argon2-cffi's own defaults (RFC 9106, low-memory profile); tests lower them to stay fast.
_ARGON2 = profiles.RFC_9106_LOW_MEMORY


class UsersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_USERS_")

    service_name: str = "users"
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    admin_name: str = "Administrator"
    token_expires_in: int = Field(default=1800, ge=1)

    password_time_cost: int = Field(default=_ARGON2.time_cost, ge=1)
    password_memory_cost: int = Field(default=_ARGON2.memory_cost, ge=8)
    password_parallelism: int = Field(default=_ARGON2.parallelism, ge=1)
