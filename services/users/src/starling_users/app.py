"""`create_app`: the users service on Starling's standard app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starling_core import app as core
from starling_core.db import Database
from starling_core.events import Events
from starling_core.tokens import JWTConfig
from starling_users.passwords import Passwords
from starling_users.repository import DatabaseUserStores
from starling_users.routes import SCOPES, UsersState, routes
from starling_users.service import PasswordHashing, UsersService
from starling_users.settings import UsersSettings
from starling_users.tokens import AccessTokens

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger("starling.users")


async def create_first_admin(users: UsersService, settings: UsersSettings) -> None:
    """The administrator from the settings, created once: a later start finds it and does nothing."""
    if not (settings.admin_email and settings.admin_password):
        return
    created = await users.ensure_admin(
        email=settings.admin_email,
        password=settings.admin_password.get_secret_value(),
        name=settings.admin_name,
    )
    if created is not None:
        logger.info("created the administrator %s", created.email)


def create_app(
    settings: UsersSettings | None = None,
    *,
    database: Database | None = None,
    passwords: PasswordHashing | None = None,
    events: Events | None = None,
) -> core.ServiceApp:
    """The users service; `passwords` replaces the Argon2id hashing the settings describe (tests only).
    `events` relays the outbox (`user.changed`, `user.deleted`) to the broker the settings name, if any."""
    settings = settings or UsersSettings()

    @asynccontextmanager
    async def lifespan(database: Database) -> AsyncIterator[UsersState]:
        users = UsersService(
            DatabaseUserStores(database),
            passwords or Passwords.from_settings(settings),
            refresh_expires_in=settings.refresh_token_expires_in,
        )
        tokens = AccessTokens(
            JWTConfig.from_settings(settings),
            expires_in=settings.token_expires_in,
            role_scopes=settings.role_scopes,
        )
        await create_first_admin(users, settings)
        yield {"users": users, "tokens": tokens}

    return core.create_app(
        settings,
        routes=routes,
        scopes=SCOPES,
        lifespan=lifespan,
        migrations=MIGRATIONS,
        database=database,
        rate_limited_paths=("/api/", "/users", "/auth"),
        # core runs the outbox relay for as long as the app (to Kafka when one is configured; otherwise
        # events wait in the outbox) and shows the outbox in /health
        events=events or Events(settings),
    )
