"""The users suite runs through the Starling test kit; these name the app and its tables.

The kit's `auth_client` and `admin_client` carry tokens for subjects it makes up; the users service
checks every token against its user's row, so here those subjects are stored users, of the right role.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp

from starling_core.settings import ServiceSettings
from starling_testkit import AppFactory
from starling_testkit.tokens import ADMIN_SUB, DEFAULT_SUB, TokenFactory
from starling_users.app import create_app
from starling_users.models import UsersBase
from starling_users.settings import UsersSettings

from .helpers import client_with, store_user

# Argon2id at its cheapest, so hashing does not dominate the suite; production keeps the defaults.
FAST_HASHING = {"password_time_cost": 1, "password_memory_cost": 1024, "password_parallelism": 1}


@pytest.fixture
def app_factory() -> AppFactory:
    return create_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return UsersBase.metadata


@pytest.fixture
def app_settings(app_settings: ServiceSettings) -> UsersSettings:
    # The kit's test settings, as UsersSettings with cheap hashing.
    return UsersSettings(**(app_settings.model_dump(exclude={"service_name"}) | FAST_HASHING))


def stored_client_fixture(user_id: str, role: str, scopes_fixture: str) -> Any:
    """A client fixture like the kit's, whose subject `user_id` is stored first as a user of `role`."""

    @pytest_asyncio.fixture(loop_scope="session")
    async def fixture(
        request: pytest.FixtureRequest,
        started_app: ASGIApp,
        db_session: AsyncSession,
        token_factory: TokenFactory,
    ) -> AsyncIterator[httpx.AsyncClient]:
        await store_user(db_session, user_id, role=role)
        token = token_factory(user_id, request.getfixturevalue(scopes_fixture), ver=0)
        async with client_with(started_app, token) as client:
            yield client

    return fixture


auth_client = stored_client_fixture(DEFAULT_SUB, "user", "user_scopes")
admin_client = stored_client_fixture(ADMIN_SUB, "admin", "admin_scopes")
