"""Tokens the users service has since revoked, refused by every other service that trusts its tokens.

The users service announces a role or password change, a logout and a deletion (`user.changed`,
`user.deleted` on `users.users`). Each service built with `create_app(..., refuse_revoked_tokens=True)`
runs a consumer group of its own (`<service>-tokens`) that keeps, per user, the time before which their
tokens are void, in core's `token_revocations` table (one history for every service:
`starling_core/versions/`).

Every process keeps those times in memory: it reads them all at start-up, learns at once what its own
consumer records, and every `refresh_every` seconds reads the rows any process recorded since it last
looked. A request then costs a dictionary look-up, not a query. `RevokedTokensMiddleware` runs right
after authentication: a token issued before its user's time leaves the caller anonymous with the reason
core's checks answer, so a protected route is a 401 (`Token has been revoked: log in again`) and a
WebSocket is closed 1008, as for any bad token. Routes need no change, and the rate limiter counts such a
caller by address.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.types import ASGIApp, Receive, Scope, Send

from starling_core.auth import AUTH_ERROR_KEY, REVOCATIONS_KEY, TOKEN_REVOKED, TokenUser
from starling_core.db import Database, DatabaseUnavailable
from starling_core.events.consumer import Consumer
from starling_core.events.envelope import Event
from starling_core.events.topics import USER_CHANGED, USER_DELETED, UserEvent
from starling_core.repository import Stores
from starling_core.schema import token_revocations

logger = logging.getLogger("starling.revocations")

REVOKED = TOKEN_REVOKED

# How far back each refresh reads again before the latest `recorded_at` it saw: a consumer's transaction
# that began earlier may commit later, and two hosts' clocks may disagree by a little.
OVERLAP = timedelta(seconds=5)


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
        statement = insert(token_revocations).values(
            user_id=user_id, revoked_at=at, reason=reason, recorded_at=datetime.now(UTC)
        )
        excluded = statement.excluded
        await self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[token_revocations.c.user_id],
                set_={
                    "revoked_at": excluded.revoked_at,
                    "reason": excluded.reason,
                    "recorded_at": excluded.recorded_at,
                },
                where=excluded.revoked_at > token_revocations.c.revoked_at,
            )
        )

    async def recorded_since(self, since: datetime | None) -> list[tuple[str, datetime, datetime]]:
        """`(user_id, revoked_at, recorded_at)` of every row recorded at or after `since` (all if None)."""
        columns = token_revocations.c
        statement = select(columns.user_id, columns.revoked_at, columns.recorded_at)
        if since is not None:
            statement = statement.where(columns.recorded_at >= since)
        result = await self.session.execute(statement)
        return [(row.user_id, row.revoked_at, row.recorded_at) for row in result]


class Revocations:
    """Which tokens the users service's events have ended, as this process knows it."""

    def __init__(self, database: Database, *, refresh_every: float = 1.0) -> None:
        self.stores = Stores(database, TokenRevocations)
        self.refresh_every = refresh_every
        self._before: dict[str, float] = {}  # user id -> the time before which their tokens are void
        self._seen: datetime | None = None  # the latest `recorded_at` read

    def revoked(self, user_id: str, issued_at: float) -> bool:
        """True when a token of `user_id` issued at `issued_at` (its `iat`, seconds) has been revoked."""
        before = self._before.get(user_id)
        # Tokens issued by earlier versions have whole-second `iat`s: one issued in the second of the
        # change counts as before it.
        return before is not None and issued_at < before

    async def refresh(self) -> int:
        """Read what any process recorded since this one last looked; how many rows were read."""
        since = None if self._seen is None else self._seen - OVERLAP
        async with self.stores.reading() as revocations:
            rows = await revocations.recorded_since(since)
        for user_id, revoked_at, recorded_at in rows:
            self._learn(user_id, revoked_at)
            self._seen = recorded_at if self._seen is None else max(self._seen, recorded_at)
        return len(rows)

    async def keep_fresh(self) -> None:
        """`refresh` every `refresh_every` seconds until cancelled. With the database away the times
        already read stay in force (no consumer can record new ones meanwhile either)."""
        while True:
            await asyncio.sleep(self.refresh_every)
            try:
                await self.refresh()
            except DatabaseUnavailable as exc:
                logger.warning(
                    "revocations not refreshed, the database is unavailable: %r", exc.__cause__ or exc
                )

    async def record(self, event: Event[UserEvent], revocations: TokenRevocations) -> None:
        """`user.changed` and `user.deleted` alike: the user's earlier tokens end. Run in the consumer's
        transaction, beside its inbox row, so a redelivered event changes nothing; the others learn it
        at their next refresh."""
        await revocations.record(event.payload.user_id, event.occurred_at, event.type)
        self._learn(event.payload.user_id, event.occurred_at)

    def arrived(self, event: Event[Any]) -> None:
        """This process refuses the user's earlier tokens as soon as the event arrives, not once its
        transaction has had its write turn: under a load of writes on SQLite that wait took seconds.
        Learning early is safe: a later time only ever replaces an earlier one, and the event is the
        users service's word, recorded by `record` when its turn comes (or by a redelivery)."""
        if isinstance(event.payload, UserEvent) and event.payload.user_id:
            self._learn(event.payload.user_id, event.occurred_at)

    def consumer(self, group: str, **options: Any) -> Consumer[TokenRevocations]:
        """The consumer group that records revocations (`options` as `Consumer` takes them)."""
        return (
            Consumer(self.stores, group, on_arrival=self.arrived, **options)
            .on(USER_CHANGED, self.record)
            .on(USER_DELETED, self.record)
        )

    def _learn(self, user_id: str, at: datetime) -> None:
        time = at.timestamp()
        if time > self._before.get(user_id, float("-inf")):
            self._before[user_id] = time


class RevokedTokensMiddleware:
    """Leaves a caller whose token was revoked anonymous, with the reason; runs after authentication."""

    def __init__(self, app: ASGIApp, *, revocations: Revocations) -> None:
        self.app = app
        self.revocations = revocations

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            scope[REVOCATIONS_KEY] = self.revocations  # for `starling_core.auth.token_ended`, later
            user = scope.get("user")
            if isinstance(user, TokenUser) and self.revocations.revoked(
                user.sub, float(user.claims.claims["iat"])
            ):
                scope["user"], scope["auth"] = UnauthenticatedUser(), AuthCredentials()
                scope[AUTH_ERROR_KEY] = REVOKED
        await self.app(scope, receive, send)
