"""Core's suite runs on the items app, through the test kit like any service's suite."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from starling_testkit import AppFactory

from .itemsapp import ItemBase, build_app


@pytest.fixture
def app_factory() -> AppFactory:
    return build_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return ItemBase.metadata
