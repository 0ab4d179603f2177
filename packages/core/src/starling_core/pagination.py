"""Cursor pagination: opaque cursors that carry the last row's sort key, and the page shape."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from starling_core.errors import RequestValidationError
from starling_core.validation import unstorable

T = TypeVar("T")

# pydantic's JSON also takes the datetimes and UUIDs that sort keys are made of (they come back as
# ISO strings), and refuses any JSON that is not an object.
_CURSOR_VALUES = TypeAdapter(dict[str, Any])
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]+")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = None


class InvalidCursor(RequestValidationError):
    """A `cursor` query parameter that no page handed out: a 422 on `["query", "cursor"]`."""

    def __init__(self, message: str = "Invalid cursor") -> None:
        super().__init__([{"loc": ["query", "cursor"], "msg": message, "type": "value_error"}])


def encode_cursor(values: Mapping[str, Any]) -> str:
    data = _CURSOR_VALUES.dump_json(dict(values))
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> dict[str, Any]:
    # The cursor comes from the client: anything encode_cursor did not write is refused, including
    # the stray characters that a lenient base64 decoder would skip.
    if not _URLSAFE_BASE64.fullmatch(cursor):
        raise InvalidCursor("Invalid cursor")
    try:
        values = _CURSOR_VALUES.validate_json(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValidationError):
        raise InvalidCursor("Invalid cursor") from None
    # Base64 hides a NUL or an infinity from the query's own checks, and no page wrote one: PostgreSQL
    # refuses NUL even in a comparison, which was a 500.
    if unstorable(values, ("query", "cursor")):
        raise InvalidCursor("Invalid cursor")
    return values
