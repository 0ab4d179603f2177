"""`@operation`: one declaration of what an endpoint reads and returns, used at run time and in OpenAPI.

The decorated handler receives its validated inputs as keyword arguments (`body=`, `query=`) and
returns a value that is serialised through the declared response type (or a ready `Response`).
Because `/openapi.json` is built from the same declaration, the document cannot drift from the code.
A handler that reads its body itself (a form, an upload) declares what it accepts with `accepts=`,
so the document still shows the body. `route(path, GET=..., POST=...)` puts every method of a path
on one route, so that a wrong method's 405 names them all in `Allow`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from starling_core.auth import check_scopes
from starling_core.validation import check_path_params, parse_body, parse_query

Handler = Callable[..., Awaitable[Any]]
Endpoint = Callable[[Request], Awaitable[Response]]
OPERATION_ATTR = "__starling_operation__"
METHODS_ATTR = "__starling_methods__"


@dataclass(frozen=True)
class Operation:
    summary: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: Any = None
    status_code: int = 200
    errors: Sequence[int] = ()
    scopes: Sequence[str] = ()
    # A valid token is needed (whatever its scopes); always true when `scopes` are given.
    authenticated: bool = False
    tags: Sequence[str] = ()
    # Other successful answers a handler returns itself as a ready `Response`: status -> body type.
    extra_responses: Mapping[int, Any] = field(default_factory=dict)
    # Headers a successful answer carries: status -> header name -> what it holds; documented only.
    response_headers: Mapping[int, Mapping[str, str]] = field(default_factory=dict)
    # Media type -> the model a handler that parses its own body validates it with; documented only.
    accepts: Mapping[str, type[BaseModel]] = field(default_factory=dict)


def operation(
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: Any = None,
    status_code: int = 200,
    errors: Sequence[int] = (),
    scopes: Sequence[str] = (),
    authenticated: bool = False,
    tags: Sequence[str] = (),
    summary: str | None = None,
    accepts: Mapping[str, type[BaseModel]] | None = None,
    extra_responses: Mapping[int, Any] | None = None,
    response_headers: Mapping[int, Mapping[str, str]] | None = None,
) -> Callable[[Handler], Endpoint]:
    if body is not None and accepts:
        raise TypeError("operation() takes body= (parsed here) or accepts= (parsed by the handler), not both")
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
            authenticated=authenticated or bool(scopes),
            tags=tags,
            accepts=MappingProxyType(dict(accepts or {})),
            extra_responses=MappingProxyType(dict(extra_responses or {})),
            response_headers=MappingProxyType(dict(response_headers or {})),
        )

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            if spec.authenticated:
                check_scopes(request, scopes)
            check_path_params(request)
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
            # JSON bytes straight from pydantic's serialiser: no Python structure built for the
            # standard library's encoder to walk again.
            return Response(adapter.dump_json(result), status_code=status_code, media_type="application/json")

        setattr(endpoint, OPERATION_ATTR, spec)
        return endpoint

    return decorator


def operation_of(endpoint: Any) -> Operation | None:
    found = getattr(endpoint, OPERATION_ATTR, None)
    return found if isinstance(found, Operation) else None


def route(path: str, **endpoints: Endpoint) -> Route:
    """One route for every method of `path`: `route("/items", GET=list_items, POST=create_item)`.

    Starlette answers 405 from the first route whose path matches, naming only that route's methods
    in `Allow`; with one route per path the header lists every method the path has.
    """
    if not endpoints:
        raise TypeError("route() needs at least one METHOD=endpoint")
    by_method = {method.upper(): endpoint for method, endpoint in endpoints.items()}
    if "GET" in by_method:
        by_method.setdefault("HEAD", by_method["GET"])

    async def dispatch(request: Request) -> Response:
        return await by_method[request.method](request)

    setattr(dispatch, METHODS_ATTR, MappingProxyType(by_method))
    name = "_".join(sorted({endpoint.__name__ for endpoint in endpoints.values()}))
    return Route(path, dispatch, methods=list(by_method), name=name)


def endpoints_of(route: Route) -> dict[str, Any]:
    """Method -> endpoint of a route, whether made by `route()` or by Starlette's `Route`."""
    by_method = getattr(route.endpoint, METHODS_ATTR, None)
    if by_method is not None:
        return dict(by_method)
    return dict.fromkeys(route.methods or {"GET"}, route.endpoint)
