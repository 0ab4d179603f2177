"""The users table, and the refresh tokens it hands out."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, UTCDateTime, new_metadata

ROLES = ("user", "admin")
ADMIN = "admin"


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
    # The database enforces uniqueness on the address's key (`emails.email_key`), so two concurrent
    # registrations of "A@x.io" and "a@x.io", or of two Unicode spellings of one address, cannot both succeed.
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Every access token carries the version it was issued under (its `ver` claim); a role or password
    # change and a logout move it on, which ends every earlier token of the user on this service at once.
    token_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class RefreshToken(UsersBase):
    """One refresh token, stored only as its SHA-256 digest; every login starts a family of them."""

    __tablename__ = "refresh_tokens"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The login it descends from: a rotated token used again ends the whole family.
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Set when the token was exchanged for its successor; kept until it expires, to recognise reuse.
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
