"""The users service's settings: the shared ones plus its own, read from `STARLING_USERS_*`."""

from __future__ import annotations

from argon2 import profiles
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from starling_core.settings import ServiceSettings
from starling_users.models import ROLES

# A refresh token unused for this long (seconds) expires: 14 days.
REFRESH_TOKEN_EXPIRES_IN = 14 * 24 * 3600

# argon2-cffi's own defaults (RFC 9106, low-memory profile); tests lower them to stay fast.
_ARGON2 = profiles.RFC_9106_LOW_MEMORY

_USER_SCOPES = ["agent:run", "agent:read", "reports:read", "assessments:read", "assessments:write"]
_ADMIN_SCOPES = [
    "agent:run",
    "agent:read",
    "agent:admin",
    "users:admin",
    "reports:read",
    "reports:write",
    "assessments:read",
    "assessments:write",
    "assessments:admin",
]


class UsersSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_USERS_")

    service_name: str = "users"
    admin_email: str | None = None
    admin_password: SecretStr | None = None
    admin_name: str = "Administrator"
    # Access tokens are short: another service accepts one until it expires, whatever happened to its
    # user meanwhile (the users service itself checks each against the user's row). Refresh tokens renew them.
    token_expires_in: int = Field(default=900, ge=1)
    refresh_token_expires_in: int = Field(default=REFRESH_TOKEN_EXPIRES_IN, ge=1)
    # Role -> the scopes a token issued at login carries; `STARLING_USERS_ROLE_SCOPES` is a JSON object.
    # Granting a new service's scopes is a change of this setting, nothing else.
    role_scopes: dict[str, list[str]] = Field(
        default_factory=lambda: {"user": list(_USER_SCOPES), "admin": list(_ADMIN_SCOPES)}
    )

    password_time_cost: int = Field(default=_ARGON2.time_cost, ge=1)
    password_memory_cost: int = Field(default=_ARGON2.memory_cost, ge=8)
    password_parallelism: int = Field(default=_ARGON2.parallelism, ge=1)

    @field_validator("role_scopes")
    @classmethod
    def _every_role_and_only_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        missing = [role for role in ROLES if role not in value]
        if missing:
            raise ValueError(f"STARLING_USERS_ROLE_SCOPES must grant scopes to role(s) {', '.join(missing)}")
        unknown = sorted(value.keys() - set(ROLES))
        if unknown:
            raise ValueError(
                f"STARLING_USERS_ROLE_SCOPES names unknown role(s) {', '.join(unknown)}; "
                f"the roles are {', '.join(ROLES)}"
            )
        for role, scopes in value.items():
            # The issued `scope` is the scopes joined by spaces: one with a space in it would become two.
            if any(scope.split() != [scope] for scope in scopes):
                raise ValueError(
                    f"STARLING_USERS_ROLE_SCOPES: role {role} has an empty scope or one with spaces"
                )
        return value
