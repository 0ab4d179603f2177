"""Thin endpoints: parse the input, call `AssessmentsService` or `QuestionBank`, shape the answer."""

from __future__ import annotations

from typing import TypedDict

from starlette.requests import Request

from starling_assessments.schemas import (
    AnswerIn,
    AnswerOut,
    AreaRatingOut,
    AssessmentCreate,
    AssessmentOut,
    AssessmentsQuery,
    BankQuery,
    BankQuestionOut,
    QuestionCreate,
    QuestionOut,
    RatingOut,
    SkillAreaOut,
)
from starling_assessments.service import Actor, AssessmentsService, QuestionBank
from starling_core.auth import Scopes, current_user
from starling_core.operations import operation, route
from starling_core.pagination import Page

ASSESSMENTS_READ = "assessments:read"
ASSESSMENTS_WRITE = "assessments:write"
ASSESSMENTS_ADMIN = "assessments:admin"
# A user reads and takes assessments; an administrator also reads everyone's and keeps the question
# bank. The users service grants these by role (STARLING_USERS_ROLE_SCOPES, whose defaults do).
SCOPES = Scopes(user=(ASSESSMENTS_READ, ASSESSMENTS_WRITE), admin=(ASSESSMENTS_ADMIN,))


class AssessmentsState(TypedDict):
    """What the routes use, built once in the app's lifespan: each request's `request.state`."""

    assessments: AssessmentsService
    bank: QuestionBank


def _actor(request: Request[AssessmentsState]) -> Actor:
    user = current_user(request)
    return Actor(sub=user.sub, is_admin=ASSESSMENTS_ADMIN in user.scopes)


# --- skill areas and assessments ---------------------------------------------------------------------


@operation(response=list[SkillAreaOut], scopes=[ASSESSMENTS_READ], errors=[401, 403], tags=["assessments"])
async def list_skill_areas(request: Request[AssessmentsState]) -> list[SkillAreaOut]:
    """The skill areas an assessment may cover, with how many questions each has."""
    areas = await request.state["bank"].skill_areas()
    return [SkillAreaOut(skill_area=area, questions=count) for area, count in areas]


@operation(
    body=AssessmentCreate,
    response=AssessmentOut,
    status_code=201,
    scopes=[ASSESSMENTS_WRITE],
    errors=[401, 403, 422],
    tags=["assessments"],
)
async def create_assessment(request: Request[AssessmentsState], body: AssessmentCreate) -> AssessmentOut:
    """Start an assessment of the chosen skill areas, with the bank's questions for them."""
    return AssessmentOut.model_validate(await request.state["assessments"].create(_actor(request), body))


@operation(
    query=AssessmentsQuery,
    response=Page[AssessmentOut],
    scopes=[ASSESSMENTS_READ],
    errors=[401, 403, 422],
    tags=["assessments"],
)
async def list_assessments(
    request: Request[AssessmentsState], query: AssessmentsQuery
) -> Page[AssessmentOut]:
    """The caller's assessments (everyone's with assessments:admin), oldest first, a page at a time."""
    rows, next_cursor = await request.state["assessments"].list_page(
        _actor(request), limit=query.limit, cursor=query.cursor, status=query.status
    )
    return Page[AssessmentOut](
        items=[AssessmentOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@operation(response=AssessmentOut, scopes=[ASSESSMENTS_READ], errors=[401, 403, 404], tags=["assessments"])
async def get_assessment(request: Request[AssessmentsState]) -> AssessmentOut:
    """One assessment: the caller's own, or any with assessments:admin."""
    assessment_id = request.path_params["assessment_id"]
    return AssessmentOut.model_validate(
        await request.state["assessments"].get(_actor(request), assessment_id)
    )


@operation(
    response=list[QuestionOut], scopes=[ASSESSMENTS_READ], errors=[401, 403, 404], tags=["assessments"]
)
async def list_questions(request: Request[AssessmentsState]) -> list[QuestionOut]:
    """An assessment's questions, area by area in the order its skill areas were chosen."""
    assessment_id = request.path_params["assessment_id"]
    questions = await request.state["assessments"].questions(_actor(request), assessment_id)
    return [QuestionOut(question_id=q.id, skill_area=q.skill_area, text=q.text) for q in questions]


@operation(
    body=AnswerIn,
    response=AnswerOut,
    scopes=[ASSESSMENTS_WRITE],
    errors=[401, 403, 404, 409, 422],
    tags=["assessments"],
)
async def put_answer(request: Request[AssessmentsState], body: AnswerIn) -> AnswerOut:
    """Answer one question of a draft (1..5), or change the answer."""
    assessment_id, question_id = request.path_params["assessment_id"], request.path_params["question_id"]
    value = await request.state["assessments"].answer(_actor(request), assessment_id, question_id, body.value)
    return AnswerOut(question_id=question_id, value=value)


@operation(
    response=AssessmentOut, scopes=[ASSESSMENTS_WRITE], errors=[401, 403, 404, 409], tags=["assessments"]
)
async def submit_assessment(request: Request[AssessmentsState]) -> AssessmentOut:
    """Complete a draft: its answers are frozen and its rating is computed, once."""
    assessment_id = request.path_params["assessment_id"]
    return AssessmentOut.model_validate(
        await request.state["assessments"].submit(_actor(request), assessment_id)
    )


@operation(response=RatingOut, scopes=[ASSESSMENTS_READ], errors=[401, 403, 404], tags=["assessments"])
async def get_rating(request: Request[AssessmentsState]) -> RatingOut:
    """The rating stored when the assessment was submitted (404 before)."""
    assessment_id = request.path_params["assessment_id"]
    rating = await request.state["assessments"].rating(_actor(request), assessment_id)
    return RatingOut(
        overall=rating.overall, areas=[AreaRatingOut.model_validate(area) for area in rating.areas]
    )


# --- the question bank (administrators) ----------------------------------------------------------------


@operation(
    query=BankQuery,
    response=Page[BankQuestionOut],
    scopes=[ASSESSMENTS_ADMIN],
    errors=[401, 403, 422],
    tags=["question bank"],
)
async def list_bank(request: Request[AssessmentsState], query: BankQuery) -> Page[BankQuestionOut]:
    """The bank's questions in use (retired ones too with `retired=true`), oldest first."""
    rows, next_cursor = await request.state["bank"].list_page(
        limit=query.limit, cursor=query.cursor, skill_area=query.skill_area, retired=query.retired
    )
    return Page[BankQuestionOut](
        items=[BankQuestionOut.model_validate(row) for row in rows], next_cursor=next_cursor
    )


@operation(
    body=QuestionCreate,
    response=BankQuestionOut,
    status_code=201,
    scopes=[ASSESSMENTS_ADMIN],
    errors=[401, 403, 409, 422],
    tags=["question bank"],
)
async def add_question(request: Request[AssessmentsState], body: QuestionCreate) -> BankQuestionOut:
    """Add a question to the bank; a new skill area starts with its first question."""
    return BankQuestionOut.model_validate(await request.state["bank"].add(body))


@operation(
    response=BankQuestionOut, scopes=[ASSESSMENTS_ADMIN], errors=[401, 403, 404], tags=["question bank"]
)
async def retire_question(request: Request[AssessmentsState]) -> BankQuestionOut:
    """Retire a question: new assessments leave it out; those that hold it keep it, answers and all."""
    return BankQuestionOut.model_validate(
        await request.state["bank"].retire(request.path_params["question_id"])
    )


routes = [
    route("/api/v1/skill-areas", GET=list_skill_areas),
    route("/api/v1/assessments", GET=list_assessments, POST=create_assessment),
    route("/api/v1/assessments/{assessment_id}", GET=get_assessment),
    route("/api/v1/assessments/{assessment_id}/questions", GET=list_questions),
    route("/api/v1/assessments/{assessment_id}/answers/{question_id}", PUT=put_answer),
    route("/api/v1/assessments/{assessment_id}/submit", POST=submit_assessment),
    route("/api/v1/assessments/{assessment_id}/rating", GET=get_rating),
    route("/api/v1/questions", GET=list_bank, POST=add_question),
    route("/api/v1/questions/{question_id}/retire", POST=retire_question),
]
