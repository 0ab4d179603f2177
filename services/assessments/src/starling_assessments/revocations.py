"""Tokens the users service has since revoked are refused on every route of this service.

The users service announces a role or password change, a logout and a deletion (`user.changed`,
`user.deleted`); `Revocations` (service.py) keeps, per user, the time before which their tokens are
void. This middleware runs after core's authentication: a token issued before that time leaves the
caller anonymous with the reason core's checks answer, so a protected route is a 401 (`Token has been
revoked: log in again`), as for any bad token. Routes need no change.
"""

from __future__ import annotations

from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from starling_assessments.service import Revocations
from starling_core.auth import AUTH_ERROR_KEY, TokenUser
from starling_core.db import DatabaseUnavailable
from starling_core.errors import database_unavailable_handler

REVOKED = "Token has been revoked: log in again"
# Probes and documents need no user: they never pay for a look-up.
UNGUARDED = ("/health", "/livez", "/metrics", "/docs", "/openapi.json")


class RevokedTokensMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if scope["type"] != "http" or not isinstance(user, TokenUser) or scope["path"].startswith(UNGUARDED):
            await self.app(scope, receive, send)
            return
        revocations: Revocations = scope["state"]["revocations"]
        try:
            revoked = await revocations.revoked(user.sub, float(user.claims.claims["iat"]))
        except DatabaseUnavailable as exc:
            # Outside core's exception handlers (this is middleware): answer the outage as they would.
            await (await database_unavailable_handler(Request(scope), exc))(scope, receive, send)
            return
        if revoked:
            scope["user"], scope["auth"] = UnauthenticatedUser(), AuthCredentials()
            scope[AUTH_ERROR_KEY] = REVOKED
        await self.app(scope, receive, send)
