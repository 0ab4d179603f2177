"""Request input to pydantic models, with failures answered 400 (malformed) or 422 (invalid)."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request

from starling_core.errors import RequestValidationError

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_json(request: Request) -> Any:
    body = await request.body()
    if not body:
        raise HTTPException(400, detail="Request body is empty; send a JSON document")
    try:
        return json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise HTTPException(400, detail=f"Malformed JSON body: {_reason(exc)}") from None


def validate(model: type[ModelT], data: Any, *, location: str) -> ModelT:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError.from_pydantic(exc, prefix=(location,)) from None


async def parse_body(request: Request, model: type[ModelT]) -> ModelT:
    return validate(model, await read_json(request), location="body")


def parse_query(request: Request, model: type[ModelT]) -> ModelT:
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    return validate(model, params, location="query")


def _reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "body is not valid UTF-8"
    return "document is nested too deeply"
