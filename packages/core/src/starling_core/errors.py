"""JSON error responses: every error a client sees has a `detail` key, and a 500 leaks nothing."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, ClassVar

from pydantic import ValidationError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ExceptionHandler

from starling_core.db import DatabaseUnavailable

logger = logging.getLogger("starling.errors")


class DomainError(Exception):
    """A refusal by a service's rules, carrying what the client is told: its status and `detail`.

    Each service declares its own in `errors.py` (`class UserNotFound(DomainError): status_code = 404`);
    one handler answers them all, so no route maps errors and a rule says its status once.
    """

    status_code: ClassVar[int] = 400
    detail_text: ClassVar[str] = "Bad request"
    headers: ClassVar[Mapping[str, str]] = MappingProxyType({})

    def __init__(self, detail: Any = None) -> None:
        self.detail = self.detail_text if detail is None else detail
        super().__init__(self.detail)


class RequestValidationError(DomainError):
    """Input that failed validation; answered 422 in pydantic's error shape."""

    status_code = 422

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @classmethod
    def from_pydantic(
        cls, exc: ValidationError, *, prefix: tuple[str | int, ...] = ()
    ) -> RequestValidationError:
        errors = [
            {"loc": [*prefix, *error["loc"]], "msg": error["msg"], "type": error["type"]}
            for error in exc.errors(include_url=False, include_context=False, include_input=False)
        ]
        return cls(errors)


def error_response(status_code: int, detail: Any, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


async def http_exception_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=exc.headers)
    return error_response(exc.status_code, exc.detail, exc.headers)


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return error_response(exc.status_code, exc.detail, exc.headers or None)


# Seconds a client is asked to wait: a database restart or failover takes about that long.
DATABASE_RETRY_AFTER = 1


async def database_unavailable_handler(request: Request, exc: Exception) -> Response:
    # An outage is an operational event, not a bug: one line per request, no traceback.
    cause = exc.__cause__ if exc.__cause__ is not None else exc
    logger.warning("database unavailable on %s %s: %r", request.method, request.url.path, cause)
    return error_response(
        503,
        "The database is unavailable; try again shortly",
        {"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


# nginx's code for "the client closed the connection first"; nothing reaches the client, but the
# status shows in middleware and logs that see the response.
CLIENT_CLOSED_REQUEST = 499


async def client_disconnect_handler(request: Request, exc: Exception) -> Response:
    # The client went away while its body was being read: nobody is left to answer, and a client
    # giving up (a timeout, a cancelled call, a shutdown) is not a server error worth a traceback.
    logger.info("client disconnected during %s %s", request.method, request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


async def server_error_handler(request: Request, exc: Exception) -> Response:
    # ServerErrorMiddleware has already decided this is a 500; the traceback goes to the log only.
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    # It is sent outside every middleware, so it carries the request id and nosniff itself.
    request_id = request.scope.get("state", {}).get("request_id")
    headers = {"X-Content-Type-Options": "nosniff", **({"X-Request-ID": request_id} if request_id else {})}
    return error_response(500, "Internal server error", headers)


def exception_handlers() -> dict[Any, ExceptionHandler]:
    return {
        HTTPException: http_exception_handler,
        DomainError: domain_error_handler,
        DatabaseUnavailable: database_unavailable_handler,
        # Every pooled connection busy for the whole pool timeout: overloaded, so "try again later".
        PoolTimeout: database_unavailable_handler,
        ClientDisconnect: client_disconnect_handler,
        Exception: server_error_handler,
    }
