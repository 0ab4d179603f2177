"""Bearer-token authentication and scope checks on Starlette's own authentication machinery."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

from starlette import status
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.websockets import WebSocket

from starling_core.errors import error_response
from starling_core.tokens import InvalidToken, JWTConfig, TokenClaims, decode_token


@dataclass(frozen=True)
class Scopes:
    """The scopes a service checks, declared beside its routes: those every user holds by default, and
    those only an administrator does. Who holds what is the users service's `STARLING_USERS_ROLE_SCOPES`;
    this declaration tells tools and the test kit (`auth_client`, `admin_client`) what the service checks.
    """

    user: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.user, *self.admin)


_P = ParamSpec("_P")
_R = TypeVar("_R")


class TokenUser(BaseUser):
    def __init__(self, claims: TokenClaims) -> None:
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.claims.sub

    @property
    def identity(self) -> str:
        return self.claims.sub

    @property
    def sub(self) -> str:
        return self.claims.sub

    @property
    def scopes(self) -> frozenset[str]:
        return self.claims.scopes


class JWTBackend(AuthenticationBackend):
    def __init__(self, config: JWTConfig) -> None:
        self.config = config

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        if conn.scope["type"] == "websocket":
            # Browsers cannot set headers on a WebSocket, so the token rides in the query string. A bad
            # one leaves the connection anonymous: AuthenticationMiddleware would close it with 1000,
            # and `requires_scopes` closes it with the 1008 the contract asks for.
            token = conn.query_params.get("token")
            if not token:
                return None
            try:
                claims = decode_token(self.config, token)
            except InvalidToken:
                return None
        else:
            header = conn.headers.get("authorization")
            if header is None:
                return None
            scheme, _, token = header.partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                raise AuthenticationError("Malformed Authorization header: expected 'Bearer <token>'")
            try:
                claims = decode_token(self.config, token)
            except InvalidToken as exc:
                raise AuthenticationError(str(exc)) from exc
        return AuthCredentials(sorted(claims.scopes)), TokenUser(claims)


def on_auth_error(conn: HTTPConnection, exc: AuthenticationError) -> Response:
    return error_response(401, str(exc), {"WWW-Authenticate": 'Bearer error="invalid_token"'})


def authentication_middleware(config: JWTConfig) -> Middleware:
    return Middleware(AuthenticationMiddleware, backend=JWTBackend(config), on_error=on_auth_error)


def requires_scopes(*scopes: str) -> Callable[[Callable[_P, Awaitable[_R]]], Callable[_P, Awaitable[_R]]]:
    """Let through authenticated callers holding every one of `scopes`; no scopes means any valid token."""

    def decorator(endpoint: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
        @functools.wraps(endpoint)
        async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            conn = _connection(args, kwargs)
            try:
                check_scopes(conn, scopes)
            except HTTPException as refusal:
                if isinstance(conn, WebSocket):
                    # Closing before accepting turns into an HTTP 403 at the handshake; accepting first
                    # lets the client see the policy-violation close code and its reason.
                    await conn.accept()
                    await conn.close(code=status.WS_1008_POLICY_VIOLATION, reason=refusal.detail)
                    return cast(_R, None)  # a WebSocket endpoint returns None
                raise
            return await endpoint(*args, **kwargs)

        return wrapper

    return decorator


def check_scopes(conn: HTTPConnection[Any], scopes: Sequence[str]) -> None:
    """Raise 401 when `conn` is anonymous, 403 naming what is missing when it lacks a scope."""
    if not conn.user.is_authenticated:
        raise _not_authenticated()
    missing = [scope for scope in scopes if scope not in conn.auth.scopes]
    if missing:
        raise HTTPException(403, detail=f"Missing required scope: {', '.join(missing)}")


def current_user(request: HTTPConnection[Any]) -> TokenUser:
    user = request.scope.get("user")
    if not isinstance(user, TokenUser):
        raise _not_authenticated()
    return user


def _not_authenticated() -> HTTPException:
    return HTTPException(
        401,
        detail="Not authenticated: send an Authorization: Bearer <token> header",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _connection(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> HTTPConnection:
    # Found by type rather than position, so endpoint functions and HTTPEndpoint methods both work.
    for value in (*args, *kwargs.values()):
        if isinstance(value, HTTPConnection):
            return value
    raise TypeError("requires_scopes() needs an endpoint that takes a Request or a WebSocket")
