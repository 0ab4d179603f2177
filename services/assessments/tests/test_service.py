"""The service's rules, on the real stores in the test's transaction (the kit's `app_database`), with a
clock passed in: the whole flow, and each way it refuses."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from starling_assessments.errors import (
    AlreadySubmitted,
    AssessmentNotFound,
    NoAnswers,
    QuestionExists,
    QuestionNotFound,
    QuestionNotInAssessment,
    RatingNotFound,
    UnknownSkillAreas,
)
from starling_assessments.models import COMPLETED, DRAFT, Question
from starling_assessments.repository import DatabaseAssessmentStores, DatabaseQuestionStores
from starling_assessments.schemas import AssessmentCreate, QuestionCreate
from starling_assessments.service import Actor, AreaScore, AssessmentsService, QuestionBank
from starling_core.events.topics import ASSESSMENT_COMPLETED, AssessmentCompleted
from starling_core.pagination import InvalidCursor
from starling_testkit import BoundDatabase
from starling_testkit.events import PublishedEvents

START = datetime(2026, 3, 1, tzinfo=UTC)
OWNER = Actor("user-1")
STRANGER = Actor("user-2")
ADMIN = Actor("admin-1", is_admin=True)

Bank = dict[str, list[Question]]


class Ticking:
    """A clock that moves one second a call."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def clock() -> Ticking:
    return Ticking()


@pytest.fixture
def service(app_database: BoundDatabase, clock: Ticking) -> AssessmentsService:
    return AssessmentsService(DatabaseAssessmentStores(app_database), clock=clock)


@pytest.fixture
def question_bank(app_database: BoundDatabase, clock: Ticking) -> QuestionBank:
    return QuestionBank(DatabaseQuestionStores(app_database), clock=clock)


async def create(service: AssessmentsService, *areas: str, actor: Actor = OWNER) -> str:
    assessment = await service.create(actor, AssessmentCreate(title="Where I stand", skill_areas=list(areas)))
    return assessment.id


# --- the whole flow ------------------------------------------------------------------------------------


async def test_create_answer_all_submit_and_read_the_rating(
    service: AssessmentsService, bank: Bank, clock: Ticking
) -> None:
    created = await service.create(
        OWNER, AssessmentCreate(title="  Q1 check-in ", skill_areas=["sql", "python"])
    )
    assert (created.title, created.skill_areas, created.status) == ("Q1 check-in", ["sql", "python"], DRAFT)
    assert created.owner == OWNER.sub
    assert created.submitted_at is None

    questions = await service.questions(OWNER, created.id)
    # every question of each area, area by area in the order chosen
    assert [q.id for q in questions] == [q.id for q in bank["sql"] + bank["python"]]

    answers = {"sql": [5, 4], "python": [2, 3, 3]}
    for area, values in answers.items():
        for question, value in zip(bank[area], values, strict=True):
            assert await service.answer(OWNER, created.id, question.id, value) == value

    submitted = await service.submit(OWNER, created.id)
    assert submitted.status == COMPLETED
    assert submitted.submitted_at == clock.now

    rating = await service.rating(OWNER, created.id)
    assert rating.areas == (
        AreaScore(skill_area="sql", rating=4.5, confidence=1.0, answered=2, questions=2),
        AreaScore(skill_area="python", rating=2.67, confidence=1.0, answered=3, questions=3),
    )
    assert rating.overall == 3.58  # (9/2 + 8/3) / 2 = 43/12
    assert (await service.get(OWNER, created.id)).status == COMPLETED


async def test_an_answer_can_be_changed_before_submission(service: AssessmentsService, bank: Bank) -> None:
    assessment_id = await create(service, "sql")
    first, second = bank["sql"]
    await service.answer(OWNER, assessment_id, first.id, 1)
    await service.answer(OWNER, assessment_id, first.id, 5)  # changed
    await service.answer(OWNER, assessment_id, second.id, 4)

    await service.submit(OWNER, assessment_id)

    assert (await service.rating(OWNER, assessment_id)).overall == 4.5


async def test_a_partly_answered_assessment_is_rated_with_its_confidence(
    service: AssessmentsService, bank: Bank
) -> None:
    assessment_id = await create(service, "testing", "sql")
    await service.answer(OWNER, assessment_id, bank["testing"][0].id, 3)

    await service.submit(OWNER, assessment_id)

    rating = await service.rating(OWNER, assessment_id)
    assert [(a.skill_area, a.rating, a.confidence) for a in rating.areas] == [
        ("testing", 3.0, 0.25),
        ("sql", None, 0.0),
    ]
    assert rating.overall == 3.0


# --- the ways it refuses ---------------------------------------------------------------------------------


async def test_submitting_twice_is_refused(service: AssessmentsService, bank: Bank) -> None:
    assessment_id = await create(service, "sql")
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 3)
    await service.submit(OWNER, assessment_id)

    with pytest.raises(AlreadySubmitted):
        await service.submit(OWNER, assessment_id)


async def test_answers_are_frozen_after_submission(service: AssessmentsService, bank: Bank) -> None:
    assessment_id = await create(service, "sql")
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 3)
    await service.submit(OWNER, assessment_id)

    with pytest.raises(AlreadySubmitted):
        await service.answer(OWNER, assessment_id, bank["sql"][0].id, 5)
    with pytest.raises(AlreadySubmitted):
        await service.answer(OWNER, assessment_id, bank["sql"][1].id, 5)  # an unanswered one too
    assert (await service.rating(OWNER, assessment_id)).overall == 3.0


async def test_submitting_with_no_answers_is_refused_and_leaves_a_draft(
    service: AssessmentsService, bank: Bank
) -> None:
    assessment_id = await create(service, "sql")

    with pytest.raises(NoAnswers):
        await service.submit(OWNER, assessment_id)

    assert (await service.get(OWNER, assessment_id)).status == DRAFT
    with pytest.raises(RatingNotFound):
        await service.rating(OWNER, assessment_id)


async def test_there_is_no_rating_before_submission(service: AssessmentsService, bank: Bank) -> None:
    assessment_id = await create(service, "sql")
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 3)

    with pytest.raises(RatingNotFound):
        await service.rating(OWNER, assessment_id)


async def test_a_question_of_another_area_is_not_in_the_assessment(
    service: AssessmentsService, bank: Bank
) -> None:
    assessment_id = await create(service, "sql")

    with pytest.raises(QuestionNotInAssessment) as raised:
        await service.answer(OWNER, assessment_id, bank["python"][0].id, 3)
    assert raised.value.errors[0]["loc"] == ["path", "question_id"]
    with pytest.raises(QuestionNotInAssessment):
        await service.answer(OWNER, assessment_id, "no-such-question", 3)


async def test_unknown_skill_areas_are_named_by_their_place(service: AssessmentsService, bank: Bank) -> None:
    with pytest.raises(UnknownSkillAreas) as raised:
        await create(service, "sql", "cooking", "python", "knitting")

    assert [error["loc"] for error in raised.value.errors] == [
        ["body", "skill_areas", 1],
        ["body", "skill_areas", 3],
    ]
    assert raised.value.unknown == ["cooking", "knitting"]


async def test_an_area_whose_questions_are_all_retired_is_unknown(
    service: AssessmentsService, question_bank: QuestionBank, bank: Bank
) -> None:
    for question in bank["sql"]:
        await question_bank.retire(question.id)

    with pytest.raises(UnknownSkillAreas):
        await create(service, "sql")


# --- the event a submission announces -------------------------------------------------------------------


async def test_a_submission_writes_one_assessment_completed_event_to_the_outbox(
    service: AssessmentsService, bank: Bank, published_events: PublishedEvents, clock: Ticking
) -> None:
    assessment_id = await create(service, "sql", "python")
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 5)
    await service.answer(OWNER, assessment_id, bank["python"][0].id, 2)

    await service.submit(OWNER, assessment_id)

    (event,) = await published_events.all()
    assert (event.type, event.key) == ("assessment.completed", assessment_id)
    (completed,) = await published_events.of(ASSESSMENT_COMPLETED)
    assert completed.payload == AssessmentCompleted(
        assessment_id=assessment_id, owner=OWNER.sub, overall=3.5, submitted_at=clock.now
    )
    assert completed.occurred_at == clock.now  # the submission's time, from the service's clock


async def test_a_refused_submission_writes_no_event(
    service: AssessmentsService, bank: Bank, published_events: PublishedEvents
) -> None:
    assessment_id = await create(service, "sql")
    with pytest.raises(NoAnswers):
        await service.submit(OWNER, assessment_id)
    assert await published_events.all() == []
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 5)
    await service.submit(OWNER, assessment_id)

    with pytest.raises(AlreadySubmitted):
        await service.submit(OWNER, assessment_id)

    assert len(await published_events.all()) == 1


# --- who may do what ---------------------------------------------------------------------------------


async def test_anyone_but_the_owner_is_told_the_assessment_does_not_exist(
    service: AssessmentsService, bank: Bank
) -> None:
    assessment_id = await create(service, "sql")
    question = bank["sql"][0].id

    attempts: list[Callable[[], Awaitable[object]]] = [
        lambda: service.get(STRANGER, assessment_id),
        lambda: service.questions(STRANGER, assessment_id),
        lambda: service.answer(STRANGER, assessment_id, question, 3),
        lambda: service.submit(STRANGER, assessment_id),
        lambda: service.rating(STRANGER, assessment_id),
    ]
    for attempt in attempts:
        with pytest.raises(AssessmentNotFound):
            await attempt()


async def test_an_admin_reads_anyones_assessment_but_does_not_answer_or_submit_it(
    service: AssessmentsService, bank: Bank
) -> None:
    assessment_id = await create(service, "sql")
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 4)

    assert (await service.get(ADMIN, assessment_id)).id == assessment_id
    assert len(await service.questions(ADMIN, assessment_id)) == 2
    with pytest.raises(AssessmentNotFound):
        await service.answer(ADMIN, assessment_id, bank["sql"][0].id, 1)
    with pytest.raises(AssessmentNotFound):
        await service.submit(ADMIN, assessment_id)

    await service.submit(OWNER, assessment_id)
    assert (await service.rating(ADMIN, assessment_id)).overall == 4.0


async def test_an_unknown_assessment_is_not_found(service: AssessmentsService) -> None:
    with pytest.raises(AssessmentNotFound) as raised:
        await service.get(ADMIN, "missing")

    assert raised.value.detail == "Assessment missing not found"


async def test_a_user_lists_their_own_and_an_admin_everyones(service: AssessmentsService, bank: Bank) -> None:
    mine = [await create(service, "sql") for _ in range(3)]
    theirs = await create(service, "sql", actor=STRANGER)

    own, _ = await service.list_page(OWNER, limit=10)
    every, _ = await service.list_page(ADMIN, limit=10)

    assert [a.id for a in own] == mine
    assert [a.id for a in every] == [*mine, theirs]


async def test_the_list_filters_by_status_and_follows_cursors(
    service: AssessmentsService, bank: Bank
) -> None:
    ids = [await create(service, "sql") for _ in range(5)]
    for assessment_id in ids[1::2]:
        await service.answer(OWNER, assessment_id, bank["sql"][0].id, 2)
        await service.submit(OWNER, assessment_id)

    first, cursor = await service.list_page(OWNER, limit=2, status=DRAFT)
    assert cursor is not None
    rest, end = await service.list_page(OWNER, limit=2, status=DRAFT, cursor=cursor)
    completed, _ = await service.list_page(OWNER, limit=10, status=COMPLETED)

    assert [a.id for a in first + rest] == ids[0::2]
    assert end is None
    assert [a.id for a in completed] == ids[1::2]


@pytest.mark.parametrize("cursor", ["%%%", "e30", "eyJjcmVhdGVkX2F0IjoieCIsImlkIjoxfQ"])
async def test_list_refuses_a_cursor_it_did_not_write(service: AssessmentsService, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await service.list_page(OWNER, limit=2, cursor=cursor)


# --- the question bank -------------------------------------------------------------------------------


async def test_the_skill_areas_are_those_with_questions_in_use(
    question_bank: QuestionBank, bank: Bank
) -> None:
    await question_bank.retire(bank["python"][0].id)

    assert await question_bank.skill_areas() == [("python", 2), ("sql", 2), ("testing", 4)]


async def test_an_added_question_opens_its_area_to_new_assessments(
    service: AssessmentsService, question_bank: QuestionBank
) -> None:
    added = await question_bank.add(QuestionCreate(skill_area="rust", text="  I use the borrow checker. "))

    assert (added.skill_area, added.text, added.retired_at) == ("rust", "I use the borrow checker.", None)
    assert await question_bank.skill_areas() == [("rust", 1)]
    assessment_id = await create(service, "rust")
    assert [q.id for q in await service.questions(OWNER, assessment_id)] == [added.id]


async def test_a_question_twice_in_one_area_is_refused(question_bank: QuestionBank) -> None:
    await question_bank.add(QuestionCreate(skill_area="rust", text="I use the borrow checker."))

    with pytest.raises(QuestionExists):
        await question_bank.add(QuestionCreate(skill_area="rust", text="I use the borrow checker."))
    # the same text in another area is another question
    await question_bank.add(QuestionCreate(skill_area="go", text="I use the borrow checker."))


async def test_retiring_keeps_the_question_in_assessments_that_hold_it(
    service: AssessmentsService, question_bank: QuestionBank, bank: Bank, clock: Ticking
) -> None:
    assessment_id = await create(service, "sql")
    retired = await question_bank.retire(bank["sql"][0].id)
    assert retired.retired_at == clock.now
    assert (await question_bank.retire(retired.id)).retired_at == retired.retired_at  # twice: no change

    held = await service.questions(OWNER, assessment_id)
    await service.answer(OWNER, assessment_id, retired.id, 5)  # still answerable there

    assert [q.id for q in held] == [q.id for q in bank["sql"]]
    later = await create(service, "sql")
    assert [q.id for q in await service.questions(OWNER, later)] == [bank["sql"][1].id]


async def test_retiring_an_unknown_question_is_not_found(question_bank: QuestionBank) -> None:
    with pytest.raises(QuestionNotFound):
        await question_bank.retire("missing")


async def test_a_stored_rating_does_not_change_when_the_bank_does(
    service: AssessmentsService, question_bank: QuestionBank, bank: Bank
) -> None:
    assessment_id = await create(service, "sql")
    await service.answer(OWNER, assessment_id, bank["sql"][0].id, 4)
    await service.submit(OWNER, assessment_id)
    before = await service.rating(OWNER, assessment_id)

    await question_bank.add(QuestionCreate(skill_area="sql", text="I write window functions."))
    for question in bank["sql"]:
        await question_bank.retire(question.id)

    assert await service.rating(OWNER, assessment_id) == before
    assert before.areas[0].questions == 2
