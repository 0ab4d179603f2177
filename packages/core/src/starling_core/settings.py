"""Settings shared by every service, read from the environment with pydantic-settings.

Shared values (`STARLING_ENV`, `STARLING_JWT_*`, `STARLING_RATE_LIMIT*`) keep one name in every
service; a service's own values use its prefix (`STARLING_USERS_DATABASE_URL`). A service
subclasses `ServiceSettings`, sets `service_name` and `model_config`'s `env_prefix`, and adds fields.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEVELOPMENT_JWT_SECRET = "starling-development-secret-change-me-0123456789"

Environment = Literal["development", "test", "production"]


def _shared(name: str) -> AliasChoices:
    # Shared settings are read from one unprefixed variable in every service, and can still be
    # passed by field name in code and tests.
    return AliasChoices(name, f"STARLING_{name.upper()}")


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="STARLING_SERVICE_",
        extra="ignore",
        validate_by_name=True,
        validate_by_alias=True,
        frozen=True,
        # A refusal names the field and the reason; pydantic would also quote the input, which for a
        # model-wide check is every variable read (database URL, passwords, keys), in the crash log.
        hide_input_in_errors=True,
    )

    service_name: str = "service"
    env: Environment = Field(default="development", validation_alias=_shared("env"))
    debug: bool = False

    jwt_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_JWT_SECRET), validation_alias=_shared("jwt_secret")
    )
    jwt_issuer: str = Field(default="starling-users", validation_alias=_shared("jwt_issuer"))
    jwt_algorithm: str = Field(default="HS256", validation_alias=_shared("jwt_algorithm"))
    # With an asymmetric algorithm (EdDSA, RS256) the issuer signs with `jwt_private_key` and
    # every service verifies with `jwt_public_key`; HS256 uses `jwt_secret` for both.
    jwt_private_key: SecretStr | None = Field(default=None, validation_alias=_shared("jwt_private_key"))
    jwt_public_key: str | None = Field(default=None, validation_alias=_shared("jwt_public_key"))

    rate_limit: str = Field(default="60/minute", validation_alias=_shared("rate_limit"))
    # Where the limiter counts: "memory" (this process), "database" (one count for every process
    # and replica), or "auto": the database on PostgreSQL, memory on SQLite.
    rate_limit_backend: Literal["auto", "memory", "database"] = Field(
        default="auto", validation_alias=_shared("rate_limit_backend")
    )

    # Events (starling_core.events): with no bootstrap servers, events wait in the outbox.
    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=_shared("kafka_bootstrap_servers")
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT", validation_alias=_shared("kafka_security_protocol")
    )
    kafka_sasl_mechanism: str | None = Field(default=None, validation_alias=_shared("kafka_sasl_mechanism"))
    kafka_sasl_username: str | None = Field(default=None, validation_alias=_shared("kafka_sasl_username"))
    kafka_sasl_password: SecretStr | None = Field(
        default=None, validation_alias=_shared("kafka_sasl_password")
    )
    # Put before every topic and consumer group name: one cluster shared by several environments.
    kafka_topic_prefix: str = Field(default="", validation_alias=_shared("kafka_topic_prefix"))
    kafka_session_timeout_ms: int = Field(
        default=10_000, validation_alias=_shared("kafka_session_timeout_ms")
    )
    kafka_heartbeat_interval_ms: int = Field(
        default=3_000, validation_alias=_shared("kafka_heartbeat_interval_ms")
    )

    database_url: str = ""
    auto_migrate: bool = True
    max_body_size: int = 1024 * 1024
    # Seconds a whole request body has, from the first read, before the request is answered 408.
    body_timeout: float = Field(default=30.0, gt=0, validation_alias=_shared("body_timeout"))

    @field_validator("rate_limit")
    @classmethod
    def _a_rate_the_limiter_counts(cls, value: str) -> str:
        # Refused at start-up with the reason, not as a 500 on the first request.
        from starling_core.ratelimit import parse_rate

        parse_rate(value)
        return value

    @model_validator(mode="after")
    def _defaults_and_production_guard(self) -> ServiceSettings:
        if not self.database_url:
            # frozen model: set through object.__setattr__ once, during validation
            object.__setattr__(self, "database_url", f"sqlite+aiosqlite:///.data/{self.service_name}.db")
        if self.env == "production" and self.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET:
            raise ValueError(
                "STARLING_JWT_SECRET is the development default; set a real secret in production"
            )
        return self
