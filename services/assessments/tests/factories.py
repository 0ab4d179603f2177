"""Rows for tests: the question bank, and assessments straight into the table (polyfactory, through the
kit's `bind_factory`, so they are saved in the test's own transaction)."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from polyfactory import Use
from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.ext.asyncio import AsyncSession

from starling_assessments.models import DRAFT, Assessment, Question, new_id
from starling_testkit.tokens import DEFAULT_SUB

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_ticks = itertools.count(1)


def later() -> datetime:
    """A time after every one handed out before: rows made in a test sort in the order they were made."""
    return T0 + timedelta(seconds=next(_ticks))


# Areas with different numbers of questions, so confidence and means differ by area.
BANK: Mapping[str, Sequence[str]] = {
    "python": ["I write idiomatic Python.", "I type my code.", "I write async code."],
    "sql": ["I write joins.", "I read query plans."],
    "testing": ["I test behaviour.", "I use fakes.", "I roll tests back.", "I fix flaky tests."],
}


async def add_bank(session: AsyncSession, bank: Mapping[str, Sequence[str]]) -> dict[str, list[Question]]:
    """`bank`'s questions, stored in order; by area."""
    stored = {
        area: [Question(id=new_id(), skill_area=area, text=text, created_at=later()) for text in texts]
        for area, texts in bank.items()
    }
    session.add_all(question for questions in stored.values() for question in questions)
    await session.commit()
    return stored


class AssessmentFactory(SQLAlchemyFactory[Assessment]):
    """An assessment row: a draft of the default test user by default; title random."""

    owner = DEFAULT_SUB
    skill_areas = Use(lambda: ["python"])
    status = DRAFT
    created_at = Use(later)
    submitted_at = None
    overall = None
