"""The users suite runs through the Starling test kit; these name the app and its tables."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from starling_core.settings import ServiceSettings
from starling_testkit import AppFactory
from starling_users.app import create_app
from starling_users.models import UsersBase
from starling_users.settings import UsersSettings

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
