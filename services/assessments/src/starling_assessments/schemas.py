"""Request and response models, from which `/openapi.json` is built, and the payload of the event this
service consumes (the envelope and the topics are core's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from starling_core.events import EventType
from starling_core.events.topics import USERS
from starling_core.pagination import PageParams

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
# A slug: what a client sends and what the bank files questions under.
SkillArea = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{0,39}$")]
QuestionText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Status = Literal["draft", "completed"]


def _distinct(areas: list[str]) -> list[str]:
    repeated = sorted({area for area in areas if areas.count(area) > 1})
    if repeated:
        raise ValueError(f"skill areas must not repeat: {', '.join(repeated)}")
    return areas


class AssessmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    # Whether each is known is the question bank's to say (the service checks it).
    skill_areas: Annotated[list[SkillArea], Field(min_length=1, max_length=20), AfterValidator(_distinct)]


class AssessmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    skill_areas: list[str]
    status: Status
    created_at: datetime
    submitted_at: datetime | None


class AssessmentsQuery(PageParams):
    status: Status | None = None


class SkillAreaOut(BaseModel):
    skill_area: str
    questions: int  # how many questions of the bank are in use for it


class QuestionOut(BaseModel):
    """A question of an assessment."""

    model_config = ConfigDict(from_attributes=True)

    question_id: str
    skill_area: str
    text: str


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: int = Field(ge=1, le=5, strict=True)


class AnswerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    question_id: str
    value: int


class AreaRatingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    skill_area: str
    rating: float | None  # the mean of its answers, 1..5; None when none of its questions was answered
    confidence: float  # answered / questions, 0..1
    answered: int
    questions: int


class RatingOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    overall: float
    areas: list[AreaRatingOut]


# --- the question bank (administrators) ----------------------------------------------------------


class QuestionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    skill_area: SkillArea
    text: QuestionText


class BankQuestionOut(BaseModel):
    """A question of the bank, as administrators see it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    skill_area: str
    text: str
    created_at: datetime
    retired_at: datetime | None


class BankQuery(PageParams):
    skill_area: SkillArea | None = None
    retired: bool = False  # include retired questions


# --- the events consumed: the users service's, on `users.users` ------------------------------------------


class UserEventIn(BaseModel):
    """The payload of `user.deleted` as this service reads it: whose assessments go."""

    user_id: str = Field(min_length=1, max_length=255)


USER_DELETED = EventType("user.deleted", USERS, UserEventIn)
