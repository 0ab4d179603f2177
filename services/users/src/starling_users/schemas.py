"""Request and response models; `/openapi.json` is built from these."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StringConstraints

from starling_users.emails import MAX_EMAIL_LENGTH, email_key

# Shown in the schema so clients see the shape; email-validator (`emails.email_key`) is the real rule.
_EMAIL_PATTERN = r"[^@\s]+@[^@\s]+\.[^@\s.]+"


def _check_email(value: str) -> str:
    email_key(value)  # raises ValueError, saying why, for an address that is not valid
    return value


Role = Literal["user", "admin"]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=MAX_EMAIL_LENGTH),
    AfterValidator(_check_email),
    Field(json_schema_extra={"pattern": f"^{_EMAIL_PATTERN}$"}),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=1024)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email
    password: Password


class UserUpdate(BaseModel):
    """Only the fields sent change; `role` may be sent by an administrator only. A user changing their own
    `password` sends their `current_password` too."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    email: Email | None = None
    password: Password | None = None
    current_password: str | None = Field(default=None, min_length=1, max_length=1024)
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


RefreshTokenValue = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class RefreshIn(BaseModel):
    """A refresh: the refresh token a login or the previous refresh answered."""

    grant_type: Literal["refresh_token"] = "refresh_token"
    refresh_token: RefreshTokenValue


class RefreshForm(BaseModel):
    """The OAuth2 refresh-token grant's form fields."""

    grant_type: Literal["refresh_token"]
    refresh_token: RefreshTokenValue
    scope: str = ""


class TokenRequest(RootModel[LoginIn | RefreshIn]):
    """A JSON login ({"email", "password"}) or refresh ({"refresh_token"})."""


class TokenForm(RootModel[LoginForm | RefreshForm]):
    """The OAuth2 password grant or its refresh-token grant."""


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    scope: str
    # Opaque; exchanged at POST /auth/token (grant_type=refresh_token) for a new pair, once.
    refresh_token: str
