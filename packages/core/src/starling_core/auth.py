"""Bearer-token authentication and scope checks on Starlette's own authentication machinery."""

from __future__ import annotations

import functools
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from starlette import status
from starlette.authentication import AuthCredentials, AuthenticationBackend, AuthenticationError, BaseUser
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket

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


# The WebSocket subprotocol that carries a bearer token: a client offers `bearer` and the token as two
# protocols (`Sec-WebSocket-Protocol: bearer, <jwt>`), and the server accepts `bearer`. Browsers can set
# this header where they cannot set Authorization, and it stays out of URLs and access logs.
BEARER_SUBPROTOCOL = "bearer"
# Where a token that failed verification leaves its reason: the request goes on anonymous, so a public
# route ignores a stale header, and a protected one answers 401 with this reason.
AUTH_ERROR_KEY = "starling.auth_error"


# What a protected route answers for a token its user's later change ended (starling_core.revocations).
TOKEN_REVOKED = "Token has been revoked: log in again"
# Where `RevokedTokensMiddleware` leaves the revocations it checked a connection against, so that a
# connection let in earlier (a WebSocket) can be checked again: `token_ended`.
REVOCATIONS_KEY = "starling.revocations"


class RevocationCheck(Protocol):
    def revoked(self, user_id: str, issued_at: float) -> bool: ...


# Verified tokens a backend keeps: each a few hundred bytes, the least recently used dropped first.
VERIFIED_TOKENS = 1024


class JWTBackend(AuthenticationBackend):
    """A verified bearer token makes the caller a `TokenUser`; anything else leaves it anonymous.

    A missing, malformed, expired or wrongly signed token never fails a request here: a route that
    needs no token (registration, login, `/health`) serves it, and the rate limiter counts the caller
    by address. Routes that need a token refuse it with 401 (`check_scopes`, `current_user`).
    """

    def __init__(self, config: JWTConfig) -> None:
        self.config = config
        # A client sends one token for minutes, and verifying it (signature, claims) was 75-241 us of
        # each request. The tokens that verified are kept, keyed by the whole token: a hit is a token
        # that verified before, and only its expiry can have changed since, which is checked on every
        # hit. A token that fails is not kept, so it is verified (and refused) each time.
        self._verified = functools.lru_cache(maxsize=VERIFIED_TOKENS)(functools.partial(decode_token, config))

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        try:
            token = _bearer_token(conn)
            if token is None:
                return None
            claims = self._verified(token)
            # PyJWT's own rule: expired once `exp` is at or before now, less the leeway.
            if claims.expires_at <= time.time() - self.config.leeway:
                raise InvalidToken("Token has expired")
        except (InvalidToken, AuthenticationError) as exc:
            conn.scope[AUTH_ERROR_KEY] = str(exc)
            return None
        return AuthCredentials(sorted(claims.scopes)), TokenUser(claims)


def _bearer_token(conn: HTTPConnection) -> str | None:
    if conn.scope["type"] == "websocket":
        offered = [item.strip() for item in conn.headers.get("sec-websocket-protocol", "").split(",")]
        if BEARER_SUBPROTOCOL in offered:
            following = offered.index(BEARER_SUBPROTOCOL) + 1
            if following < len(offered) and offered[following]:
                return offered[following]
            raise AuthenticationError("The bearer subprotocol needs the token as the next protocol")
        # Still accepted for clients that cannot set the header; access logs redact it.
        return conn.query_params.get("token") or None
    headers = conn.headers.getlist("authorization")
    if not headers:
        return None
    if len(headers) > 1:
        # One field (RFC 9110 11.6.2): a proxy reading the last and this reading the first would each
        # let a different caller through.
        raise AuthenticationError("Send one Authorization header, not several")
    scheme, _, token = headers[0].partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("Malformed Authorization header: expected 'Bearer <token>'")
    return token


def websocket_subprotocol(websocket: WebSocket[Any]) -> str | None:
    """The subprotocol to accept a WebSocket with: `bearer` when the client sent its token that way."""
    offered = [item.strip() for item in websocket.headers.get("sec-websocket-protocol", "").split(",")]
    return BEARER_SUBPROTOCOL if BEARER_SUBPROTOCOL in offered else None


def token_ended(conn: HTTPConnection[Any]) -> str | None:
    """Why the token `conn` was let in with no longer holds (it expired, or its user's tokens were
    revoked since), or None. A WebSocket lives past the check at its handshake: one that streams for
    long asks this as it goes, and closes when it has an answer."""
    user = conn.scope.get("user")
    if not isinstance(user, TokenUser):
        return None
    if user.claims.expires_at <= time.time():
        return "Token has expired"
    revocations: RevocationCheck | None = conn.scope.get(REVOCATIONS_KEY)
    if revocations is not None and revocations.revoked(user.sub, float(user.claims.claims["iat"])):
        return TOKEN_REVOKED
    return None


def authentication_middleware(config: JWTConfig) -> Middleware:
    return Middleware(AuthenticationMiddleware, backend=JWTBackend(config))


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
                    # lets the client see the policy-violation close code and its reason. A browser drops
                    # a connection whose offered `bearer` protocol is not selected, so it is selected.
                    await conn.accept(subprotocol=websocket_subprotocol(conn))
                    await conn.close(code=status.WS_1008_POLICY_VIOLATION, reason=refusal.detail)
                    return cast(_R, None)  # a WebSocket endpoint returns None
                raise
            return await endpoint(*args, **kwargs)

        return wrapper

    return decorator


def check_scopes(conn: HTTPConnection[Any], scopes: Sequence[str]) -> None:
    """Raise 401 when `conn` is anonymous, 403 naming what is missing when it lacks a scope."""
    if not conn.user.is_authenticated:
        raise _not_authenticated(conn)
    missing = [scope for scope in scopes if scope not in conn.auth.scopes]
    if missing:
        raise HTTPException(403, detail=f"Missing required scope: {', '.join(missing)}")


def current_user(request: HTTPConnection[Any]) -> TokenUser:
    user = request.scope.get("user")
    if not isinstance(user, TokenUser):
        raise _not_authenticated(request)
    return user


def _not_authenticated(conn: HTTPConnection[Any]) -> HTTPException:
    reason = conn.scope.get(AUTH_ERROR_KEY)
    if reason is not None:
        return HTTPException(401, detail=reason, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
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
