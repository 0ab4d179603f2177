"""All of the service's SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import cast

from sqlalchemy import CursorResult, and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from starling_assessments.errors import QuestionExists
from starling_assessments.models import AreaRating, Assessment, AssessmentQuestion, Question
from starling_core.db import Database
from starling_core.events import Outbox
from starling_core.events.topics import ASSESSMENT_COMPLETED, AssessmentCompleted
from starling_core.repository import Repository, Stores

Key = tuple[datetime, str]  # (created_at, id): the keyset that pages are cut on


class QuestionRepository(Repository[Question]):
    """The question bank."""

    model = Question

    async def add(self, instance: Question) -> Question:
        # In a savepoint: a duplicate undoes this insert only, and the session stays usable.
        try:
            async with self.session.begin_nested():
                self.session.add(instance)
        except IntegrityError as exc:
            raise QuestionExists from exc
        return instance

    async def area_counts(self) -> Sequence[tuple[str, int]]:
        """Every skill area with a question in use, and how many it has, by name."""
        statement = (
            select(Question.skill_area, func.count())
            .where(Question.retired_at.is_(None))
            .group_by(Question.skill_area)
            .order_by(Question.skill_area)
        )
        return [(area, int(count)) for area, count in (await self.session.execute(statement)).all()]

    async def page(
        self, *, limit: int, after: Key | None = None, skill_area: str | None = None, retired: bool = False
    ) -> Sequence[Question]:
        """Up to `limit` questions in (created_at, id) order after the key `after`; retired ones if asked."""
        statement = select(Question).order_by(Question.created_at, Question.id).limit(limit)
        if skill_area is not None:
            statement = statement.where(Question.skill_area == skill_area)
        if not retired:
            statement = statement.where(Question.retired_at.is_(None))
        if after is not None:
            statement = statement.where(
                or_(
                    Question.created_at > after[0],
                    and_(Question.created_at == after[0], Question.id > after[1]),
                )
            )
        return await self.scalars(statement)


class AssessmentRepository(Repository[Assessment]):
    model = Assessment

    async def in_use(self, skill_areas: Sequence[str]) -> Sequence[Question]:
        """The bank's questions in use for `skill_areas`, oldest first within each area."""
        statement = (
            select(Question)
            .where(Question.skill_area.in_(skill_areas), Question.retired_at.is_(None))
            .order_by(Question.created_at, Question.id)
        )
        return (await self.session.scalars(statement)).all()

    async def add_with_questions(
        self, assessment: Assessment, questions: Sequence[AssessmentQuestion]
    ) -> None:
        self.session.add(assessment)
        await self.session.flush()  # the assessment first: its questions refer to it
        self.session.add_all(questions)
        await self.session.flush()

    async def lock(self, assessment_id: str) -> Assessment | None:
        """The assessment, its row locked until the transaction ends (PostgreSQL; SQLite has one writer):
        an answer and a submission of one assessment take turns."""
        found: Assessment | None = await self.session.get(
            Assessment, assessment_id, with_for_update=True, populate_existing=True
        )
        return found

    async def page(
        self, *, limit: int, owner: str | None, status: str | None = None, after: Key | None = None
    ) -> Sequence[Assessment]:
        """Up to `limit` assessments (of `owner`, or everyone's with None) in (created_at, id) order."""
        statement = select(Assessment).order_by(Assessment.created_at, Assessment.id).limit(limit)
        if owner is not None:
            statement = statement.where(Assessment.owner == owner)
        if status is not None:
            statement = statement.where(Assessment.status == status)
        if after is not None:
            statement = statement.where(
                or_(
                    Assessment.created_at > after[0],
                    and_(Assessment.created_at == after[0], Assessment.id > after[1]),
                )
            )
        return await self.scalars(statement)

    async def questions_of(self, assessment_id: str) -> Sequence[Question]:
        """The assessment's questions in its order, in one query."""
        statement = (
            select(Question)
            .join(AssessmentQuestion, AssessmentQuestion.question_id == Question.id)
            .where(AssessmentQuestion.assessment_id == assessment_id)
            .order_by(AssessmentQuestion.position)
        )
        return (await self.session.scalars(statement)).all()

    async def set_answer(self, assessment_id: str, question_id: str, value: int, at: datetime) -> bool:
        """Record `value` for a question of the assessment; False when the question is not one of it."""
        statement = (
            update(AssessmentQuestion)
            .where(
                AssessmentQuestion.assessment_id == assessment_id,
                AssessmentQuestion.question_id == question_id,
            )
            .values(value=value, answered_at=at)
            .execution_options(synchronize_session=False)
        )
        result = cast(CursorResult[object], await self.session.execute(statement))
        return result.rowcount == 1

    async def answers(self, assessment_id: str) -> Sequence[tuple[str, int | None]]:
        """(skill area, answer or None) for every question of the assessment."""
        statement = select(AssessmentQuestion.skill_area, AssessmentQuestion.value).where(
            AssessmentQuestion.assessment_id == assessment_id
        )
        return [(area, value) for area, value in (await self.session.execute(statement)).all()]

    async def add_ratings(self, ratings: Sequence[AreaRating]) -> None:
        self.session.add_all(ratings)
        await self.session.flush()

    async def announce_completed(self, payload: AssessmentCompleted) -> None:
        """`assessment.completed` into core's outbox, in this session's transaction; the relay sends it."""
        await Outbox(self.session).add(
            ASSESSMENT_COMPLETED, key=payload.assessment_id, payload=payload, occurred_at=payload.submitted_at
        )

    async def erase_owner(self, owner: str) -> int:
        """Delete every assessment of `owner`, with its questions, answers and ratings; how many went.

        The children first, by statement: nothing depends on the database cascading."""
        theirs = select(Assessment.id).where(Assessment.owner == owner).scalar_subquery()
        await self.session.execute(delete(AreaRating).where(AreaRating.assessment_id.in_(theirs)))
        await self.session.execute(
            delete(AssessmentQuestion).where(AssessmentQuestion.assessment_id.in_(theirs))
        )
        result = cast(
            CursorResult[object],
            await self.session.execute(
                delete(Assessment)
                .where(Assessment.owner == owner)
                .execution_options(synchronize_session=False)
            ),
        )
        return result.rowcount

    async def ratings(self, assessment_id: str) -> Sequence[AreaRating]:
        statement = (
            select(AreaRating).where(AreaRating.assessment_id == assessment_id).order_by(AreaRating.position)
        )
        return (await self.session.scalars(statement)).all()


class DatabaseQuestionStores(Stores[QuestionRepository]):
    """`QuestionRepository` on a plain session for reads, or in a transaction for writes."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, QuestionRepository)


class DatabaseAssessmentStores(Stores[AssessmentRepository]):
    """`AssessmentRepository` on a plain session for reads, or in a transaction for writes."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, AssessmentRepository)
