"""`@operation`: one declaration of what an endpoint reads and returns, used at run time and in OpenAPI.

The decorated handler receives its validated inputs as keyword arguments (`body=`, `query=`) and
returns a value that is serialised through the declared response type (or a ready `Response`).
Because `/openapi.json` is built from the same declaration, the document cannot drift from the code.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from starling_core.auth import check_scopes
from starling_core.validation import parse_body, parse_query

Handler = Callable[..., Awaitable[Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
OPERATION_ATTR = "__starling_operation__"


@dataclass(frozen=True)
class Operation:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status_code: int = 200
    errors: Sequence[int] = ()
    scopes: Sequence[str] = ()
    tags: Sequence[str] = ()
    extra_responses: dict[int, str] = field(default_factory=dict)


def operation(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status_code: int = 200,
    errors: Sequence[int] = (),
    scopes: Sequence[str] = (),
    tags: Sequence[str] = (),
    summary: str | None = None,
) -> Callable[[Handler], Endpoint]:
    adapter: TypeAdapter[Any] | None = TypeAdapter(response) if response is not None else None

    def decorator(handler: Handler) -> Endpoint:
        spec = Operation(
            summary=summary or (handler.__doc__ or handler.__name__).strip().splitlines()[0],
            body=body,
            query=query,
            response=response,
            status_code=status_code,
            errors=errors,
            scopes=scopes,
            tags=tags,
        )

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            if scopes:
                check_scopes(request, scopes)
            inputs: dict[str, Any] = {}
            if query is not None:
                inputs["query"] = parse_query(request, query)
            if body is not None:
                inputs["body"] = await parse_body(request, body)
            result = await handler(request, **inputs)
            if isinstance(result, Response):
                return result
            if adapter is None:
                return Response(status_code=status_code)
            return JSONResponse(adapter.dump_python(result, mode="json"), status_code=status_code)

        setattr(endpoint, OPERATION_ATTR, spec)
        return endpoint

    return decorator


def operation_of(endpoint: Any) -> Operation | None:
    found = getattr(endpoint, OPERATION_ATTR, None)
    return found if isinstance(found, Operation) else None
