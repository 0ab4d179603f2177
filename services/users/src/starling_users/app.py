"""`create_app`: the users service on Starling's standard app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette

from starling_core import app as core
from starling_core.db import Database
from starling_core.migrations import upgrade
from starling_users.passwords import Passwords
from starling_users.repository import DatabaseUserStores
from starling_users.routes import routes
from starling_users.service import UsersService
from starling_users.settings import UsersSettings

MIGRATIONS = Path(__file__).parent / "migrations"
logger = logging.getLogger("starling.users")


async def migrate(database: Database) -> None:
    await upgrade(database, MIGRATIONS)


async def create_first_admin(database: Database, passwords: Passwords, settings: UsersSettings) -> None:
    """The administrator from the settings, created once: a later start finds it and does nothing."""
    if not (settings.admin_email and settings.admin_password):
        return
    created = await UsersService(DatabaseUserStores(database), passwords).ensure_admin(
        email=settings.admin_email,
        password=settings.admin_password.get_secret_value(),
        name=settings.admin_name,
    )
    if created is not None:
        logger.info("created the administrator %s", created.email)


def create_app(settings: UsersSettings | None = None) -> Starlette:
    settings = settings or UsersSettings()
    passwords = Passwords.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await create_first_admin(app.state.database, passwords, settings)
        yield

    app = core.create_app(
        settings,
        routes=routes,
        lifespan=lifespan,
        migrate=migrate,
        rate_limited_paths=("/api/", "/users", "/auth"),
    )
    app.state.passwords = passwords
    return app
