"""Tokens the users service has since revoked, refused by every other service that trusts its tokens.

The users service announces a role or password change, a logout and a deletion (`user.changed`,
`user.deleted` on `users.users`). Each service built with `create_app(..., refuse_revoked_tokens=True)`
runs a consumer group of its own (`<service>-tokens`) that keeps, per user, the time before which their
tokens are void, in core's `token_revocations` table (one history for every service:
`starling_core/versions/`). `RevokedTokensMiddleware` runs right after authentication: a token issued
before that time leaves the caller anonymous with the reason core's checks answer, so a protected route
is a 401 (`Token has been revoked: log in again`) and a WebSocket is closed 1008, as for any bad token.
Routes need no change, and the rate limiter counts such a caller by address.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from starlette import status
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from starling_core.auth import AUTH_ERROR_KEY, TokenUser, websocket_subprotocol
from starling_core.db import Database, DatabaseUnavailable
from starling_core.errors import database_unavailable_handler
from starling_core.events.consumer import Consumer
from starling_core.events.envelope import Event
from starling_core.events.topics import USER_CHANGED, USER_DELETED, USER_ID_LENGTH, UserEvent
from starling_core.repository import Stores
from starling_core.schema import token_revocations
from starling_core.validation import unstorable

REVOKED = "Token has been revoked: log in again"
# Core's own routes need no user: probes and documents never pay for a look-up.
UNGUARDED = ("/health", "/livez", "/metrics", "/docs", "/openapi.json")


def consumer_group(service_name: str) -> str:
    """The consumer group that records `service_name`'s revocations, as `/health` names it."""
    return f"{service_name}-tokens"


class TokenRevocations:
    """Core's `token_revocations` table on one session: one row per user, the latest time kept."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, user_id: str, at: datetime, reason: str) -> None:
        """The user's tokens issued before `at` are revoked; a later time replaces an earlier one, never
        the other way round (events may arrive again, and late)."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(token_revocations).values(user_id=user_id, revoked_at=at, reason=reason)
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[token_revocations.c.user_id],
                set_={"revoked_at": statement.excluded.revoked_at, "reason": statement.excluded.reason},
                where=statement.excluded.revoked_at > token_revocations.c.revoked_at,
            )
        )

    async def revoked_before(self, user_id: str) -> datetime | None:
        """The time before which the user's tokens are refused, None when none is."""
        found: datetime | None = await self.session.scalar(
            select(token_revocations.c.revoked_at).where(token_revocations.c.user_id == user_id)
        )
        return found


class Revocations:
    """Which tokens the users service's events have ended in this service's database."""

    def __init__(self, database: Database) -> None:
        self.stores = Stores(database, TokenRevocations)

    async def revoked(self, user_id: str, issued_at: float) -> bool:
        """True when a token of `user_id` issued at `issued_at` (its `iat`, seconds) has been revoked."""
        if len(user_id) > USER_ID_LENGTH or unstorable(user_id, ()):
            return False  # no event can name it (and the database would refuse to look)
        async with self.stores.reading() as revocations:
            before = await revocations.revoked_before(user_id)
        # `iat` has whole seconds: a token issued in the second of the change counts as before it.
        return before is not None and issued_at < before.timestamp()

    async def record(self, event: Event[UserEvent], revocations: TokenRevocations) -> None:
        """`user.changed` and `user.deleted` alike: the user's earlier tokens end. Run in the consumer's
        transaction, beside its inbox row, so a redelivered event changes nothing."""
        await revocations.record(event.payload.user_id, event.occurred_at, event.type)

    def consumer(self, group: str, **options: Any) -> Consumer[TokenRevocations]:
        """The consumer group that records revocations (`options` as `Consumer` takes them)."""
        return (
            Consumer(self.stores, group, **options)
            .on(USER_CHANGED, self.record)
            .on(USER_DELETED, self.record)
        )


class RevokedTokensMiddleware:
    """Leaves a caller whose token was revoked anonymous, with the reason; runs after authentication."""

    def __init__(self, app: ASGIApp, *, revocations: Revocations) -> None:
        self.app = app
        self.revocations = revocations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        user = scope.get("user")
        if (
            scope["type"] not in ("http", "websocket")
            or not isinstance(user, TokenUser)
            or scope["path"].startswith(UNGUARDED)
        ):
            await self.app(scope, receive, send)
            return
        try:
            revoked = await self.revocations.revoked(user.sub, float(user.claims.claims["iat"]))
        except DatabaseUnavailable as exc:
            # Outside core's exception handlers (this is middleware): answer the outage as they would.
            if scope["type"] == "websocket":
                websocket = WebSocket(scope, receive, send)
                await websocket.accept(subprotocol=websocket_subprotocol(websocket))
                await websocket.close(code=status.WS_1013_TRY_AGAIN_LATER, reason="Try again later")
            else:
                await (await database_unavailable_handler(Request(scope), exc))(scope, receive, send)
            return
        if revoked:
            scope["user"], scope["auth"] = UnauthenticatedUser(), AuthCredentials()
            scope[AUTH_ERROR_KEY] = REVOKED
        await self.app(scope, receive, send)
