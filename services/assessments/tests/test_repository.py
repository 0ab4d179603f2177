"""The repositories' SQL, against the test's database transaction (the kit's `db_session`); assessments
are made straight into the table by `AssessmentFactory` through the kit's `bind_factory`."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from starling_assessments.errors import QuestionExists
from starling_assessments.models import COMPLETED, AssessmentQuestion, Question, new_id
from starling_assessments.repository import AssessmentRepository, QuestionRepository
from starling_testkit.factories import BindFactory

from .factories import T0, AssessmentFactory, later

Bank = dict[str, list[Question]]


@pytest.fixture
def assessments(bind_factory: BindFactory) -> type[AssessmentFactory]:
    return bind_factory(AssessmentFactory)


async def hold(session: AsyncSession, assessment_id: str, questions: list[Question]) -> None:
    session.add_all(
        AssessmentQuestion(assessment_id=assessment_id, question_id=q.id, position=n, skill_area=q.skill_area)
        for n, q in enumerate(questions)
    )
    await session.commit()


async def test_the_factory_makes_a_stored_draft_with_its_values(
    db_session: AsyncSession, assessments: type[AssessmentFactory]
) -> None:
    made = await assessments.create_async(skill_areas=["sql", "python"])
    db_session.expunge_all()

    loaded = await AssessmentRepository(db_session).get(made.id)

    assert loaded is not None
    assert (loaded.status, loaded.skill_areas, loaded.overall) == ("draft", ["sql", "python"], None)
    assert loaded.created_at.tzinfo is not None


async def test_a_page_is_one_owners_in_created_at_then_id_order(
    db_session: AsyncSession, assessments: type[AssessmentFactory]
) -> None:
    tie_b = await assessments.create_async(id="b", created_at=T0)
    tie_a = await assessments.create_async(id="a", created_at=T0)
    later_one = await assessments.create_async(created_at=T0 + timedelta(seconds=1))
    await assessments.create_async(owner="someone-else")
    repository = AssessmentRepository(db_session)

    own = await repository.page(limit=10, owner=tie_a.owner)
    after_a = await repository.page(limit=10, owner=tie_a.owner, after=(T0, "a"))

    assert [a.id for a in own] == ["a", "b", later_one.id]
    assert [a.id for a in after_a] == [tie_b.id, later_one.id]
    assert len(await repository.page(limit=10, owner=None)) == 4


async def test_a_page_filters_by_status(
    db_session: AsyncSession, assessments: type[AssessmentFactory]
) -> None:
    drafts = await assessments.create_batch_async(2)
    done = await assessments.create_async(status=COMPLETED, submitted_at=later(), overall=3.5)
    repository = AssessmentRepository(db_session)

    assert [a.id for a in await repository.page(limit=10, owner=None, status="draft")] == [
        a.id for a in drafts
    ]
    assert [a.id for a in await repository.page(limit=10, owner=None, status=COMPLETED)] == [done.id]


async def test_only_the_bank_questions_in_use_of_the_areas_asked_for(
    db_session: AsyncSession, bank: Bank
) -> None:
    bank["sql"][0].retired_at = later()
    await db_session.commit()

    found = await AssessmentRepository(db_session).in_use(["sql", "testing", "cooking"])

    assert [q.id for q in found] == [q.id for q in bank["sql"][1:] + bank["testing"]]


async def test_questions_of_an_assessment_come_in_its_order(
    db_session: AsyncSession, bank: Bank, assessments: type[AssessmentFactory]
) -> None:
    made = await assessments.create_async()
    chosen = [bank["testing"][2], bank["python"][0], bank["testing"][0]]
    await hold(db_session, made.id, chosen)

    assert [q.id for q in await AssessmentRepository(db_session).questions_of(made.id)] == [
        q.id for q in chosen
    ]


async def test_an_answer_is_set_only_on_a_question_the_assessment_holds(
    db_session: AsyncSession, bank: Bank, assessments: type[AssessmentFactory]
) -> None:
    mine, theirs = await assessments.create_batch_async(2)
    await hold(db_session, mine.id, bank["sql"])
    await hold(db_session, theirs.id, bank["python"])
    repository = AssessmentRepository(db_session)

    assert await repository.set_answer(mine.id, bank["sql"][0].id, 4, later())
    assert not await repository.set_answer(mine.id, bank["python"][0].id, 4, later())  # theirs, not mine
    assert not await repository.set_answer(mine.id, "missing", 4, later())
    assert sorted(await repository.answers(mine.id), key=str) == [("sql", 4), ("sql", None)]
    assert await repository.answers(theirs.id) == [("python", None)] * 3


@pytest.mark.parametrize("value", [0, 6])
async def test_the_database_itself_refuses_an_answer_outside_1_to_5(
    db_session: AsyncSession, bank: Bank, assessments: type[AssessmentFactory], value: int
) -> None:
    made = await assessments.create_async()
    await hold(db_session, made.id, bank["sql"])

    with pytest.raises(IntegrityError):
        async with db_session.begin_nested():
            await AssessmentRepository(db_session).set_answer(made.id, bank["sql"][0].id, value, later())


async def test_lock_finds_the_assessment_or_none(
    db_session: AsyncSession, assessments: type[AssessmentFactory]
) -> None:
    made = await assessments.create_async()
    repository = AssessmentRepository(db_session)

    assert (await repository.lock(made.id)) is made
    assert await repository.lock("missing") is None


async def test_area_counts_leave_out_retired_questions_and_empty_areas(
    db_session: AsyncSession, bank: Bank
) -> None:
    for question in bank["sql"]:
        question.retired_at = later()
    bank["python"][0].retired_at = later()
    await db_session.commit()

    assert await QuestionRepository(db_session).area_counts() == [("python", 2), ("testing", 4)]


async def test_the_database_refuses_one_question_twice_in_an_area(db_session: AsyncSession) -> None:
    repository = QuestionRepository(db_session)
    await repository.add(Question(id=new_id(), skill_area="go", text="I use channels.", created_at=later()))

    with pytest.raises(QuestionExists):
        await repository.add(
            Question(id=new_id(), skill_area="go", text="I use channels.", created_at=later())
        )
    # The failed insert was undone in its savepoint: the session still works.
    assert await repository.count() == 1


async def test_the_bank_pages_by_area_and_with_or_without_retired(
    db_session: AsyncSession, bank: Bank
) -> None:
    bank["testing"][1].retired_at = later()
    await db_session.commit()
    repository = QuestionRepository(db_session)

    in_use = await repository.page(limit=10, skill_area="testing")
    every = await repository.page(limit=10, skill_area="testing", retired=True)
    first_two = await repository.page(limit=2)

    assert [q.id for q in in_use] == [bank["testing"][n].id for n in (0, 2, 3)]
    assert [q.id for q in every] == [q.id for q in bank["testing"]]
    assert [q.id for q in first_two] == [q.id for q in bank["python"][:2]]
