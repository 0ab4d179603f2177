"""The question bank, the assessments drawn from it, their answers and the ratings stored at submission."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, UTCDateTime, new_metadata

DRAFT = "draft"
COMPLETED = "completed"


def new_id() -> str:
    return str(uuid.uuid4())


class AssessmentsBase(Base):
    __abstract__ = True
    metadata = new_metadata()  # this service's tables only


class Question(AssessmentsBase):
    """A question of the bank. Retired questions stay, for the assessments that already hold them."""

    __tablename__ = "questions"
    __table_args__ = (
        # Unique in the database, so two concurrent additions of one question cannot both succeed.
        UniqueConstraint("skill_area", "text"),
        Index("ix_questions_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    skill_area: Mapped[str] = mapped_column(String(40))
    text: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class Assessment(AssessmentsBase):
    __tablename__ = "assessments"
    __table_args__ = (
        Index("ix_assessments_owner_created_at_id", "owner", "created_at", "id"),
        Index("ix_assessments_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(255))  # the token's subject: a user id of the users service
    title: Mapped[str] = mapped_column(String(200))
    # In the order the user chose them; a value, never queried inside.
    skill_areas: Mapped[list[str]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default=DRAFT)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    overall: Mapped[float | None] = mapped_column(Float, default=None)  # stored at submission


class AssessmentQuestion(AssessmentsBase):
    """A question of the bank as one assessment holds it, and the answer given to it (None: not yet)."""

    __tablename__ = "assessment_questions"
    __table_args__ = (CheckConstraint("value BETWEEN 1 AND 5", name="value_1_to_5"),)

    assessment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("assessments.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[str] = mapped_column(String(36), ForeignKey("questions.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    # The question's area, copied: a rating groups by it without reading the bank.
    skill_area: Mapped[str] = mapped_column(String(40))
    value: Mapped[int | None] = mapped_column(Integer, default=None)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)


class AreaRating(AssessmentsBase):
    """One skill area's rating of a submitted assessment, computed once at submission."""

    __tablename__ = "area_ratings"

    assessment_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("assessments.id", ondelete="CASCADE"), primary_key=True
    )
    skill_area: Mapped[str] = mapped_column(String(40), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    questions: Mapped[int] = mapped_column(Integer)
    answered: Mapped[int] = mapped_column(Integer)
    rating: Mapped[float | None] = mapped_column(Float, default=None)  # None: no answer in this area
    confidence: Mapped[float] = mapped_column(Float)
