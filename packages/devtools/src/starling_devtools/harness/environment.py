"""Each service's environment, from one description of the run: the one place tools set it.

Every service of a run shares the signing secret, the broker and where the others answer (a service
finds another at `STARLING_<NAME>_<OTHER>_URL`: reporting's `STARLING_REPORTING_AGENTS_URL` is one).
A tool's run also lifts the rate limit (a 429 must never stand in for the answer being tested), makes
password hashing cheap and lets consumer groups join fast; `nox -s serve` keeps the services' defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starling_core.settings import DEVELOPMENT_JWT_SECRET
from starling_core.tokens import JWTConfig, issue_token

UNLIMITED_RATE = "1000000/minute"
# Argon2id at low cost: tools register and log in hundreds of times, and at the default parameters
# (0.3 s of both cores a hash) hashing would be all they measure.
FAST_PASSWORDS = {
    "STARLING_USERS_PASSWORD_TIME_COST": "1",
    "STARLING_USERS_PASSWORD_MEMORY_COST": "8192",
    "STARLING_USERS_PASSWORD_PARALLELISM": "1",
}
# Consumer groups join in session_timeout / 2 on the test broker: a second, not five.
FAST_GROUPS = {"STARLING_KAFKA_SESSION_TIMEOUT_MS": "1000", "STARLING_KAFKA_HEARTBEAT_INTERVAL_MS": "300"}
JWT_ISSUER = "starling-users"


@dataclass(frozen=True)
class Admin:
    """The administrator the users service creates at start-up."""

    email: str = "admin@example.com"
    password: str = "starling-admin-0123"


@dataclass(frozen=True)
class Environment:
    """What the services of one run share; `env(name)` is one service's part of it."""

    urls: Mapping[str, str]
    secret: str | None = None  # None: the services' development default
    bootstrap: str | None = None
    admin: Admin = field(default_factory=Admin)
    tool: bool = True  # a tool's run rather than the developer loop

    def env(self, name: str, database_url: str | None = None) -> dict[str, str]:
        prefix = f"STARLING_{name.upper()}_"
        env = {f"{prefix}{other.upper()}_URL": url for other, url in self.urls.items() if other != name}
        env["STARLING_ENV"] = "development"
        if database_url:
            env[f"{prefix}DATABASE_URL"] = database_url
        if self.secret:
            env["STARLING_JWT_SECRET"] = self.secret
        if self.bootstrap:
            env["STARLING_KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap
        if self.tool:
            env |= {"STARLING_RATE_LIMIT": UNLIMITED_RATE, **(FAST_GROUPS if self.bootstrap else {})}
        if name == "users":
            env |= {f"{prefix}ADMIN_EMAIL": self.admin.email, f"{prefix}ADMIN_PASSWORD": self.admin.password}
        if name == "users" and self.tool:
            env |= FAST_PASSWORDS
        return env

    def mint(self, sub: str, scopes: Sequence[str], *, expires_in: int = 3600, **claims: Any) -> str:
        """A token every service of the run accepts, for a tool that needs one without a login."""
        secret = self.secret or DEVELOPMENT_JWT_SECRET
        config = JWTConfig(secret, secret, JWT_ISSUER)
        return issue_token(config, sub=sub, scopes=scopes, expires_in=expires_in, **claims)
