"""Request and response models; `/openapi.json` is built from these."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from starling_users.models import normalize_email

MAX_EMAIL_LENGTH = 254

# Deliberately simple: one "@", no spaces, a dot in the domain. Deliverability is not ours to judge.
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s.]+"
_EMAIL = re.compile(_EMAIL_PATTERN)


def _check_email(value: str) -> str:
    if not _EMAIL.fullmatch(value):
        raise ValueError("value is not a valid email address")
    # Lower-casing can lengthen a string ("İ" becomes two characters); the normalized copy has the
    # same column width, which PostgreSQL enforces.
    if len(normalize_email(value)) > MAX_EMAIL_LENGTH:
        raise ValueError(f"value is longer than {MAX_EMAIL_LENGTH} characters once lower-cased")
    return value


Role = Literal["user", "admin"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=MAX_EMAIL_LENGTH),
    AfterValidator(_check_email),
    # Checked by _check_email for its clearer message; shown in the schema so clients see the rule.
    Field(json_schema_extra={"pattern": f"^{_EMAIL_PATTERN}$"}),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email
    password: Password


class UserUpdate(BaseModel):
    """Only the fields sent change; `role` may be sent by an administrator only."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = None
    password: Password | None = None
    role: Role | None = None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    email: str
    role: Role
    created_at: datetime


class LoginIn(BaseModel):
    email: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)


class LoginForm(BaseModel):
    """The OAuth2 password grant's form fields."""

    username: str = Field(min_length=1, max_length=254)
    password: str = Field(min_length=1, max_length=1024)
    grant_type: Literal["password"] | None = None
    scope: str = ""


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    scope: str
