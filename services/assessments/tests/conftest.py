"""The suite runs through the Starling test kit; these name the app and its tables, and give the
question bank most tests start from."""

from __future__ import annotations

import pytest
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession

from starling_assessments.app import create_app
from starling_assessments.models import AssessmentsBase, Question
from starling_testkit import AppFactory

from .factories import BANK, add_bank


@pytest.fixture
def app_factory() -> AppFactory:
    return create_app


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    return AssessmentsBase.metadata


@pytest.fixture
async def bank(db_session: AsyncSession) -> dict[str, list[Question]]:
    """The test's question bank (the kit builds tables, not the seed migration): `BANK`, by area."""
    return await add_bank(db_session, BANK)
