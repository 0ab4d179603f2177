"""Core's suite runs on the items app, through the test kit like any service's suite."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData

from starling_testkit import AppFactory

from .itemsapp import ItemBase, build_app
from .ledgerapp import LedgerBase


@pytest.fixture
def app_factory() -> AppFactory:
    return build_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    # the items app's tables, and the ledger's (the events tests' service)
    combined = MetaData(naming_convention=ItemBase.metadata.naming_convention)
    for source in (ItemBase.metadata, LedgerBase.metadata):
        for table in source.sorted_tables:
            table.to_metadata(combined)
    return combined
