"""The agents suite runs on the kit: it names the app factory and the tables."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from starling_agents.app import create_app
from starling_agents.models import AgentsBase
from starling_testkit import AppFactory


@pytest.fixture
def app_factory() -> AppFactory:
    return create_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return AgentsBase.metadata
