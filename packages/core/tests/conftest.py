"""Core's suite runs on the items app, through the test kit like any service's suite."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import MetaData
from starlette.applications import Starlette

from .itemsapp import ItemBase, ItemSettings, build_app


@pytest.fixture
def app_factory() -> Callable[[ItemSettings], Starlette]:
    return build_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return ItemBase.metadata
