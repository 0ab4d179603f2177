"""Request input to pydantic models, with failures answered 400 (malformed) or 422 (invalid)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, AwareDatetime, BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from starling_core.errors import RequestValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)

# Valid JSON and valid pydantic input that no database column can take: PostgreSQL refuses NUL in
# text, and an unpaired surrogate (JSON's "\ud800") cannot be encoded as UTF-8 by any driver, nor
# by the response that would echo it. Refused up front as 422 rather than failing later as a 500.
_UNPAIRED_SURROGATE = re.compile("[\ud800-\udfff]")


def as_utc(value: datetime) -> datetime:
    """`value` in UTC, a naive time taken to be UTC already. A ValueError (pydantic's 422) when its UTC
    is outside the years 1..9999 a datetime holds: `0001-01-01T00:00:00+14:00` parses, and then
    overflowed in conversion, or when the database driver bound it, as a 500."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("Datetime is out of range once converted to UTC") from None


# An aware time from a client, in UTC: what a sort key in a cursor or a filter is compared with.
UTCDatetime = Annotated[AwareDatetime, AfterValidator(as_utc)]


async def read_json(request: Request[Any]) -> Any:
    body = await request.body()
    if not body:
        raise HTTPException(400, detail="Request body is empty; send a JSON document")
    try:
        # Decoded strictly here: json.loads(bytes) would let UTF-8-encoded surrogates through.
        return json.loads(body.decode("utf-8-sig"))
    # ValueError covers JSONDecodeError, UnicodeDecodeError and an integer over Python's 4300 digits.
    except (ValueError, RecursionError) as exc:
        raise HTTPException(400, detail=f"Malformed JSON body: {_reason(exc)}") from None


def validate(model: type[ModelT], data: Any, *, location: str) -> ModelT:
    if errors := unstorable(data, (location,)):
        raise RequestValidationError(errors)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError.from_pydantic(exc, prefix=(location,)) from None


async def parse_body(request: Request[Any], model: type[ModelT]) -> ModelT:
    return validate(model, await read_json(request), location="body")


def parse_query(request: Request[Any], model: type[ModelT]) -> ModelT:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    return validate(model, params, location="query")


def check_path_params(conn: HTTPConnection[Any]) -> None:
    """422 for a path parameter that could not be looked up (a NUL or an unpaired surrogate)."""
    if errors := unstorable(dict(conn.path_params), ("path",)):
        raise RequestValidationError(errors)


def unstorable(data: Any, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    """Errors for every string that cannot be stored and every number that is not finite in `data`."""
    errors: list[dict[str, Any]] = []
    # Iterative: the document may be nested as deeply as the JSON parser allowed.
    pending: list[tuple[tuple[str | int, ...], Any]] = [(loc, data)]
    while pending:
        where, value = pending.pop()
        if isinstance(value, str):
            if problem := _text_problem(value):
                errors.append({"loc": list(where), "msg": problem, "type": "value_error"})
        elif isinstance(value, float):
            if not math.isfinite(value):
                errors.append(
                    {"loc": list(where), "msg": "Input should be a finite number", "type": "finite_number"}
                )
        elif isinstance(value, Mapping):
            for key, item in value.items():
                if isinstance(key, str) and (problem := _text_problem(key)):
                    shown = key.encode("utf-8", "backslashreplace").decode("utf-8")
                    errors.append(
                        {
                            "loc": [*where, shown],
                            "msg": f"Key {problem[0].lower()}{problem[1:]}",
                            "type": "value_error",
                        }
                    )
                else:
                    pending.append(((*where, key), item))
        elif isinstance(value, list):
            pending.extend(((*where, index), item) for index, item in enumerate(value))
    return errors


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "String should not contain NUL (\\u0000) characters"
    if _UNPAIRED_SURROGATE.search(text):
        return "String should be valid Unicode, without unpaired surrogates"
    return None


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "body is not valid UTF-8"
    if isinstance(exc, RecursionError):
        return "document is nested too deeply"
    return "a number in it is too long"
