"""The service's rules. Storage (and the clock) come in as arguments, so a test hands in fakes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from starling_assessments.errors import (
    AlreadySubmitted,
    AssessmentNotFound,
    NoAnswers,
    QuestionNotFound,
    QuestionNotInAssessment,
    RatingNotFound,
    UnknownSkillAreas,
)
from starling_assessments.models import (
    COMPLETED,
    DRAFT,
    AreaRating,
    Assessment,
    AssessmentQuestion,
    Question,
    new_id,
)
from starling_assessments.schemas import AssessmentCreate, QuestionCreate, UserEventIn
from starling_core.events import Event
from starling_core.events.topics import AssessmentCompleted
from starling_core.pagination import InvalidCursor, decode_cursor, encode_cursor
from starling_core.validation import UTCDatetime

Clock = Callable[[], datetime]
logger = logging.getLogger("starling.assessments")
Key = tuple[datetime, str]
Paged = TypeVar("Paged", Assessment, Question)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Actor:
    """Who asks: the token's subject, and whether it may read every assessment."""

    sub: str
    is_admin: bool = False


# --- ratings ---------------------------------------------------------------------------------------

_CENTS = Decimal("0.01")


def _rounded(value: Fraction) -> float:
    """Two decimals, halves up: the same on every machine, which binary floats' `round` is not."""
    exact = Decimal(value.numerator) / Decimal(value.denominator)
    return float(exact.quantize(_CENTS, rounding=ROUND_HALF_UP))


@dataclass(frozen=True)
class AreaScore:
    skill_area: str
    rating: float | None  # the mean of its answers; None when none of its questions was answered
    confidence: float  # answered / questions
    answered: int
    questions: int


@dataclass(frozen=True)
class Rating:
    overall: float
    areas: tuple[AreaScore, ...]


def rate(skill_areas: Sequence[str], answers: Sequence[tuple[str, int | None]]) -> Rating:
    """The rating of `answers` ((area, value or None) per question), area by area in `skill_areas` order.

    Each area's rating is the mean of its answers and its confidence the share of its questions answered;
    `overall` is the mean of the (exact) ratings of the areas that have one. Every figure is rounded to two
    decimals last. Raises `NoAnswers` when nothing was answered.
    """
    areas: list[AreaScore] = []
    means: list[Fraction] = []
    for area in skill_areas:
        values = [value for where, value in answers if where == area]
        given = [value for value in values if value is not None]
        mean = Fraction(sum(given), len(given)) if given else None
        if mean is not None:
            means.append(mean)
        areas.append(
            AreaScore(
                skill_area=area,
                rating=_rounded(mean) if mean is not None else None,
                confidence=_rounded(Fraction(len(given), len(values))) if values else 0.0,
                answered=len(given),
                questions=len(values),
            )
        )
    if not means:
        raise NoAnswers
    return Rating(overall=_rounded(sum(means, Fraction(0)) / len(means)), areas=tuple(areas))


# --- storage, as the service needs it ----------------------------------------------------------------


class QuestionStore(Protocol):
    """The question bank; `QuestionRepository` is the real one."""

    async def get(self, ident: str) -> Question | None: ...
    async def add(self, instance: Question) -> Question: ...  # raises QuestionExists
    async def area_counts(self) -> Sequence[tuple[str, int]]: ...
    async def page(
        self, *, limit: int, after: Key | None = None, skill_area: str | None = None, retired: bool = False
    ) -> Sequence[Question]: ...


class QuestionStores(Protocol):
    def reading(self) -> AbstractAsyncContextManager[QuestionStore]: ...
    def writing(self) -> AbstractAsyncContextManager[QuestionStore]: ...


class AssessmentStore(Protocol):
    """Assessments, their questions, answers and ratings; `AssessmentRepository` is the real one."""

    async def get(self, ident: str) -> Assessment | None: ...
    async def lock(self, assessment_id: str) -> Assessment | None: ...
    async def in_use(self, skill_areas: Sequence[str]) -> Sequence[Question]: ...
    async def add_with_questions(
        self, assessment: Assessment, questions: Sequence[AssessmentQuestion]
    ) -> None: ...
    async def page(
        self, *, limit: int, owner: str | None, status: str | None = None, after: Key | None = None
    ) -> Sequence[Assessment]: ...
    async def questions_of(self, assessment_id: str) -> Sequence[Question]: ...
    async def set_answer(self, assessment_id: str, question_id: str, value: int, at: datetime) -> bool: ...
    async def answers(self, assessment_id: str) -> Sequence[tuple[str, int | None]]: ...
    async def add_ratings(self, ratings: Sequence[AreaRating]) -> None: ...
    async def ratings(self, assessment_id: str) -> Sequence[AreaRating]: ...
    async def announce_completed(self, payload: AssessmentCompleted) -> None: ...  # core's outbox
    async def erase_owner(self, owner: str) -> int: ...


class AssessmentStores(Protocol):
    def reading(self) -> AbstractAsyncContextManager[AssessmentStore]: ...
    def writing(self) -> AbstractAsyncContextManager[AssessmentStore]: ...


# --- cursors ---------------------------------------------------------------------------------------


class _CursorKey(BaseModel):
    created_at: UTCDatetime
    id: str


def _decode_key(cursor: str | None) -> Key | None:
    if not cursor:
        return None
    try:
        key = _CursorKey.model_validate(decode_cursor(cursor))
    except ValidationError:
        raise InvalidCursor from None
    return key.created_at, key.id


def _next_cursor(rows: list[Paged], limit: int) -> tuple[list[Paged], str | None]:
    """The first `limit` of `rows` (one more was read), and the cursor after them if there are more."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], encode_cursor({"created_at": last.created_at, "id": last.id})


# --- the question bank -------------------------------------------------------------------------------


class QuestionBank:
    """The questions assessments are drawn from; administrators add and retire them."""

    def __init__(self, stores: QuestionStores, clock: Clock = utcnow) -> None:
        self.stores = stores
        self.clock = clock

    async def skill_areas(self) -> Sequence[tuple[str, int]]:
        """Every skill area an assessment may cover (one with a question in use), with its count."""
        async with self.stores.reading() as bank:
            return await bank.area_counts()

    async def add(self, data: QuestionCreate) -> Question:
        question = Question(id=new_id(), skill_area=data.skill_area, text=data.text, created_at=self.clock())
        async with self.stores.writing() as bank:
            return await bank.add(question)

    async def retire(self, question_id: str) -> Question:
        """Take a question out of new assessments; those that hold it keep it. Retiring twice is a no-op."""
        async with self.stores.writing() as bank:
            question = await bank.get(question_id)
            if question is None:
                raise QuestionNotFound(question_id)
            if question.retired_at is None:
                question.retired_at = self.clock()
            return question

    async def list_page(
        self, *, limit: int, cursor: str | None = None, skill_area: str | None = None, retired: bool = False
    ) -> tuple[list[Question], str | None]:
        after = _decode_key(cursor)
        async with self.stores.reading() as bank:
            rows = list(await bank.page(limit=limit + 1, after=after, skill_area=skill_area, retired=retired))
        return _next_cursor(rows, limit)


# --- assessments -------------------------------------------------------------------------------------


class AssessmentsService:
    def __init__(self, stores: AssessmentStores, clock: Clock = utcnow) -> None:
        self.stores = stores
        self.clock = clock

    async def create(self, actor: Actor, data: AssessmentCreate) -> Assessment:
        """A draft holding every question in use of each chosen area, area by area in the chosen order."""
        async with self.stores.writing() as store:
            bank = await store.in_use(data.skill_areas)
            by_area = {area: [q for q in bank if q.skill_area == area] for area in data.skill_areas}
            unknown = [(index, area) for index, area in enumerate(data.skill_areas) if not by_area[area]]
            if unknown:
                raise UnknownSkillAreas(unknown)
            assessment = Assessment(
                id=new_id(),
                owner=actor.sub,
                title=data.title,
                skill_areas=list(data.skill_areas),
                status=DRAFT,
                created_at=self.clock(),
                submitted_at=None,
                overall=None,
            )
            held = [question for area in data.skill_areas for question in by_area[area]]
            await store.add_with_questions(
                assessment,
                [
                    AssessmentQuestion(
                        assessment_id=assessment.id,
                        question_id=question.id,
                        position=position,
                        skill_area=question.skill_area,
                        value=None,
                        answered_at=None,
                    )
                    for position, question in enumerate(held)
                ],
            )
        return assessment

    async def get(self, actor: Actor, assessment_id: str) -> Assessment:
        async with self.stores.reading() as store:
            return _readable(actor, await store.get(assessment_id), assessment_id)

    async def list_page(
        self, actor: Actor, *, limit: int, cursor: str | None = None, status: str | None = None
    ) -> tuple[list[Assessment], str | None]:
        """The actor's own assessments (everyone's for an administrator), oldest first, a page at a time."""
        after = _decode_key(cursor)
        owner = None if actor.is_admin else actor.sub
        async with self.stores.reading() as store:
            rows = list(await store.page(limit=limit + 1, owner=owner, status=status, after=after))
        return _next_cursor(rows, limit)

    async def questions(self, actor: Actor, assessment_id: str) -> Sequence[Question]:
        async with self.stores.reading() as store:
            _readable(actor, await store.get(assessment_id), assessment_id)
            return await store.questions_of(assessment_id)

    async def answer(self, actor: Actor, assessment_id: str, question_id: str, value: int) -> int:
        """Record (or change) the answer to one question of a draft; the value recorded."""
        async with self.stores.writing() as store:
            assessment = _owned(actor, await store.lock(assessment_id), assessment_id)
            if assessment.status != DRAFT:
                raise AlreadySubmitted(assessment_id)
            if not await store.set_answer(assessment_id, question_id, value, self.clock()):
                raise QuestionNotInAssessment(question_id)
        return value

    async def submit(self, actor: Actor, assessment_id: str) -> Assessment:
        """Complete a draft: its answers are frozen and its rating computed and stored, once."""
        async with self.stores.writing() as store:
            assessment = _owned(actor, await store.lock(assessment_id), assessment_id)
            if assessment.status != DRAFT:
                raise AlreadySubmitted(assessment_id)
            rating = rate(assessment.skill_areas, await store.answers(assessment_id))  # NoAnswers
            submitted_at = self.clock()
            assessment.status = COMPLETED
            assessment.submitted_at = submitted_at
            assessment.overall = rating.overall
            await store.add_ratings(
                [
                    AreaRating(
                        assessment_id=assessment_id,
                        skill_area=area.skill_area,
                        position=position,
                        questions=area.questions,
                        answered=area.answered,
                        rating=area.rating,
                        confidence=area.confidence,
                    )
                    for position, area in enumerate(rating.areas)
                ]
            )
            # In the outbox, in this transaction: the event exists exactly when the submission does.
            await store.announce_completed(
                AssessmentCompleted(
                    assessment_id=assessment.id,
                    owner=assessment.owner,
                    overall=rating.overall,
                    submitted_at=submitted_at,
                )
            )
        return assessment

    async def rating(self, actor: Actor, assessment_id: str) -> Rating:
        """The rating stored at submission; a draft has none."""
        async with self.stores.reading() as store:
            assessment = _readable(actor, await store.get(assessment_id), assessment_id)
            if assessment.status != COMPLETED or assessment.overall is None:
                raise RatingNotFound(assessment_id)
            stored = await store.ratings(assessment_id)
        areas = tuple(
            AreaScore(
                skill_area=row.skill_area,
                rating=row.rating,
                confidence=row.confidence,
                answered=row.answered,
                questions=row.questions,
            )
            for row in stored
        )
        return Rating(overall=assessment.overall, areas=areas)

    async def forget_user(self, event: Event[UserEventIn], store: AssessmentStore) -> None:
        """`user.deleted`: the user's assessments go, answers and ratings with them, in the consumer's
        transaction (beside its inbox row: a redelivery finds nothing left to do). Nothing here is of use
        without its owner, and a title is the user's own words."""
        erased = await store.erase_owner(event.payload.user_id)
        if erased:
            logger.info("erased %d assessments of deleted user %s", erased, event.payload.user_id)


def _readable(actor: Actor, assessment: Assessment | None, assessment_id: str) -> Assessment:
    if assessment is None or not (actor.is_admin or assessment.owner == actor.sub):
        raise AssessmentNotFound(assessment_id)
    return assessment


def _owned(actor: Actor, assessment: Assessment | None, assessment_id: str) -> Assessment:
    """Only its owner answers and submits an assessment; anyone else is told it does not exist."""
    if assessment is None or assessment.owner != actor.sub:
        raise AssessmentNotFound(assessment_id)
    return assessment
