"""The agents suite runs on the kit: it names the app factory and the tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import MetaData
from starlette.applications import Starlette

from starling_agents.app import create_app
from starling_agents.models import AgentsBase
from starling_agents.settings import AgentsSettings


@pytest.fixture
def app_factory() -> Callable[[AgentsSettings], Starlette]:
    return create_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return AgentsBase.metadata
