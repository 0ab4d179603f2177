"""The users table."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, UTCDateTime, new_metadata

ROLES = ("user", "admin")


def new_id() -> str:
    return str(uuid.uuid4())


class UsersBase(Base):
    __abstract__ = True
    metadata = new_metadata()  # this service's tables only


class User(UsersBase):
    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("role IN ('user', 'admin')", name="role"),
        Index("ix_users_created_at_id", "created_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(254))
    # The database enforces uniqueness on the lower-cased address, so two concurrent registrations
    # of "A@x.io" and "a@x.io" cannot both succeed.
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def normalize_email(email: str) -> str:
    return email.strip().lower()
