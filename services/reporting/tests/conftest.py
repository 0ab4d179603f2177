"""The reporting suite runs on the kit: it names the app factory and the tables."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import MetaData
from starlette.applications import Starlette

from starling_reporting.app import create_app
from starling_reporting.models import ReportingBase
from starling_reporting.settings import ReportingSettings


@pytest.fixture
def app_factory() -> Callable[[ReportingSettings], Starlette]:
    return create_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return ReportingBase.metadata
