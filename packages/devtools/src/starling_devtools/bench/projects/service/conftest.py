"""The kit's two fixtures, naming the app and the tables that this project's `benchservice` gives it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from benchservice import create_app, metadata

if TYPE_CHECKING:
    from sqlalchemy import MetaData

    from starling_testkit import AppFactory

pytest_plugins = ["benchclock"]


@pytest.fixture
def app_factory() -> AppFactory:
    return create_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return metadata
