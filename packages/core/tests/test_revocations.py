"""Tokens the users service revoked are refused by a service built with `refuse_revoked_tokens=True`.

In process, events are handed to the app's own consumer group (`Consumer.deliver`: the same inbox,
transaction and handlers as from the broker). Over the real broker (the kit's `kafka_broker`), the users
service's outbox is played by this database's own: an event written to it is sent by core's relay to
`users.users`, and the app's `<service>-tokens` group takes it from there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import ASGIApp
from starlette.websockets import WebSocket

from starling_core.app import ServiceApp, create_app
from starling_core.auth import Scopes, current_user, requires_scopes, websocket_subprotocol
from starling_core.db import Database
from starling_core.events import Consumer, Event, EventFailed, Events, Outbox, Outcome, Received
from starling_core.events.topics import USER_CHANGED, USER_DELETED, UserEvent
from starling_core.revocations import (
    REVOKED,
    Revocations,
    TokenRevocations,
    consumer_group,
)
from starling_core.schema import token_revocations
from starling_core.settings import ServiceSettings
from starling_servers.kafka import free_port
from starling_testkit import AppFactory, BoundDatabase, FrozenClock
from starling_testkit.tokens import DEFAULT_SUB, TEST_JWT_SECRET, TokenFactory

from .polling import eventually
from .websockets import websocket_session

THINGS_READ = "things:read"


class GuardedSettings(ServiceSettings):
    service_name: str = "guarded"


@requires_scopes(THINGS_READ)
async def things(request: Request) -> JSONResponse:
    return JSONResponse({"sub": current_user(request).sub})


@requires_scopes(THINGS_READ)
async def follow(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=websocket_subprotocol(websocket))
    await websocket.send_json({"sub": websocket.user.identity})
    await websocket.close()


def build_guarded(settings: GuardedSettings, *, database: Database | None = None) -> ServiceApp:
    return create_app(
        settings,
        routes=[Route("/api/things", things), WebSocketRoute("/api/follow", follow)],
        scopes=Scopes(user=(THINGS_READ,)),
        database=database,
        events=Events(settings, poll_interval=0.05),
        refuse_revoked_tokens=True,
    )


@pytest.fixture
def app_factory() -> AppFactory:
    return build_guarded


def tokens_consumer(app: ServiceApp) -> Consumer[TokenRevocations]:
    """The app's `guarded-tokens` group, as create_app builds it, on the app's own revocations."""
    assert app.revocations is not None
    return app.revocations.consumer(consumer_group("guarded"), retry_delays=())


def user_event(user_id: str, at: datetime, kind: Any = USER_CHANGED) -> Event[UserEvent]:
    event: Event[UserEvent] = kind.new(user_id, UserEvent(user_id=user_id, role="user"), occurred_at=at)
    return event


def refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and response.json() == {"detail": REVOKED}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_user_changed_refuses_the_users_earlier_tokens_and_only_those(
    client: httpx.AsyncClient,
    app: ServiceApp,
    token_factory: TokenFactory,
    frozen_clock: FrozenClock,
) -> None:
    earlier = token_factory()
    assert (await client.get("/api/things", headers=bearer(earlier))).status_code == 200

    outcome = await tokens_consumer(app).deliver(user_event(DEFAULT_SUB, frozen_clock.tick(5)))

    assert outcome == Outcome.HANDLED
    response = await client.get("/api/things", headers=bearer(earlier))
    assert refused(response), response.text
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get("/health", headers=bearer(earlier))).status_code == 200  # no user's route
    frozen_clock.tick(1)  # a token issued after the change: the user logged in again
    assert (await client.get("/api/things", headers=bearer(token_factory()))).status_code == 200
    other = token_factory(sub="someone-else")
    assert (await client.get("/api/things", headers=bearer(other))).status_code == 200


async def test_a_deleted_users_websocket_is_closed_with_the_reason(
    started_app: ASGIApp, app: ServiceApp, token_factory: TokenFactory, frozen_clock: FrozenClock
) -> None:
    earlier = token_factory()
    await tokens_consumer(app).deliver(user_event(DEFAULT_SUB, frozen_clock.tick(5), USER_DELETED))

    messages = await websocket_session(started_app, "/api/follow", protocols=["bearer", earlier])

    assert messages[0] == {"type": "websocket.accept", "subprotocol": "bearer", "headers": []}
    assert messages[-1] == {"type": "websocket.close", "code": 1008, "reason": REVOKED}


async def test_tokens_issued_a_moment_before_and_after_the_change_are_told_apart(
    client: httpx.AsyncClient, app: ServiceApp, token_factory: TokenFactory, frozen_clock: FrozenClock
) -> None:
    frozen_clock.move_to(datetime(2026, 6, 1, 12, 0, 0, 200_000, tzinfo=UTC))
    before = token_factory()  # iat 12:00:00.200: `iat` keeps milliseconds
    await tokens_consumer(app).deliver(user_event(DEFAULT_SUB, frozen_clock.tick(0.5)))  # 12:00:00.700
    frozen_clock.tick(0.1)
    after = token_factory()  # 12:00:00.800: logged in again in the same second, and not refused for it

    assert refused(await client.get("/api/things", headers=bearer(before)))
    assert (await client.get("/api/things", headers=bearer(after))).status_code == 200


async def test_a_token_whose_iat_no_float_holds_is_401_not_a_server_error(
    client: httpx.AsyncClient, app: ServiceApp
) -> None:
    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": DEFAULT_SUB, "scopes": [THINGS_READ], "iat": -(10**400), "exp": now + 60}
    token = jwt.encode({**claims, "iss": app.settings.jwt_issuer}, TEST_JWT_SECRET, algorithm="HS256")

    response = await client.get("/api/things", headers=bearer(token))

    assert response.status_code == 401


async def test_a_redelivered_or_late_event_changes_nothing(
    app: ServiceApp, app_database: BoundDatabase, frozen_clock: FrozenClock
) -> None:
    consumer = tokens_consumer(app)
    first, later = frozen_clock.tick(0), frozen_clock.tick(60)
    newer = user_event(DEFAULT_SUB, later)

    outcomes = [
        await consumer.deliver(newer),
        await consumer.deliver(newer),
        await consumer.deliver(user_event(DEFAULT_SUB, first, USER_DELETED)),
    ]

    assert outcomes == [Outcome.HANDLED, Outcome.DUPLICATE, Outcome.HANDLED]
    columns = token_revocations.c
    async with app_database.session() as session:
        rows = (await session.execute(select(columns.user_id, columns.revoked_at, columns.reason))).all()
    assert [tuple(row) for row in rows] == [(DEFAULT_SUB, later, "user.changed")]  # the latest time stands
    assert app.revocations is not None
    assert app.revocations.revoked(DEFAULT_SUB, (later - timedelta(seconds=1)).timestamp())  # in memory too


class WaitingForItsTurn(BoundDatabase):
    """The test's database, whose write transactions wait until `turn` is set: the write turn a busy
    SQLite process hands out one transaction at a time."""

    def __init__(self, connection: AsyncConnection, turn: asyncio.Event) -> None:
        super().__init__(connection)
        self.turn = turn

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        await self.turn.wait()
        async with super().transaction() as session:
            yield session


async def test_a_revocation_is_refused_as_it_arrives_before_its_transaction_has_its_turn(
    app_database: BoundDatabase, frozen_clock: FrozenClock
) -> None:
    turn = asyncio.Event()
    revocations = Revocations(WaitingForItsTurn(app_database.connection, turn))
    consumer = revocations.consumer(consumer_group("guarded"), retry_delays=())
    at = frozen_clock.tick(5)
    message = Received(USER_CHANGED.topic, DEFAULT_SUB, user_event(DEFAULT_SUB, at).to_json(), offset=0)
    earlier = (at - timedelta(seconds=1)).timestamp()

    handling = asyncio.create_task(consumer.handle_batch([message]))
    try:
        await asyncio.sleep(0)  # the task runs up to the transaction, which waits for its turn
        known_before_its_turn = revocations.revoked(DEFAULT_SUB, earlier)
        waiting = (handling.done(), consumer.status.handled)
    finally:
        turn.set()
        await handling

    assert known_before_its_turn
    assert waiting == (False, 0)
    assert consumer.status.handled == 1  # and recorded for the other processes, in its transaction
    async with app_database.session() as session:
        stored = (await session.execute(select(token_revocations.c.user_id))).scalars().all()
    assert stored == [DEFAULT_SUB]


async def test_an_event_naming_nobody_is_dead_lettered_not_applied(app: ServiceApp) -> None:
    bad = USER_DELETED.new(DEFAULT_SUB, UserEvent.model_construct(user_id="", role=None))
    with pytest.raises(EventFailed):  # no dead-letter topic in process, so it raises
        await tokens_consumer(app).deliver(bad)


async def test_what_another_process_records_is_refused_here_within_a_refresh(
    client: httpx.AsyncClient,
    app_database: BoundDatabase,
    token_factory: TokenFactory,
    frozen_clock: FrozenClock,
) -> None:
    earlier = bearer(token_factory())
    other_process = Revocations(app_database).consumer(consumer_group("guarded"), retry_delays=())

    await other_process.deliver(user_event(DEFAULT_SUB, frozen_clock.tick(5)))

    async def refused_here() -> bool:  # this app's revocations read the table every second
        return refused(await client.get("/api/things", headers=earlier))

    await eventually(refused_here, "the other process's revocation refused here")


async def test_a_process_that_starts_knows_every_revocation_recorded_before(
    app_database: BoundDatabase, frozen_clock: FrozenClock
) -> None:
    at = frozen_clock.tick(5)
    async with app_database.transaction() as session:
        await TokenRevocations(session).record("ada", at, "user.deleted")
        await TokenRevocations(session).record("bo", at, "user.changed")
    starting = Revocations(app_database)

    assert await starting.refresh() == 2

    assert [starting.revoked(user, at.timestamp() - 1) for user in ("ada", "bo", "cy")] == [True, True, False]
    assert not starting.revoked("ada", at.timestamp() + 1)  # logged in again since


async def test_with_the_database_away_the_revocations_known_stay_in_force(
    app_database: BoundDatabase, frozen_clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = Database.from_url(f"postgresql+asyncpg://nobody@127.0.0.1:{free_port()}/nothing")
    revocations = Revocations(unreachable, refresh_every=0.01)
    at = frozen_clock.tick(5)
    async with app_database.transaction() as session:  # what this process's consumer recorded earlier
        await revocations.record(user_event(DEFAULT_SUB, at), TokenRevocations(session))
    refreshing = asyncio.create_task(revocations.keep_fresh())
    try:

        async def warned() -> bool:
            return "revocations not refreshed, the database is unavailable" in caplog.text

        await eventually(warned, "a refresh that failed, said once")
        assert not refreshing.done()  # it goes on trying
        assert revocations.revoked(DEFAULT_SUB, at.timestamp() - 1)
    finally:
        refreshing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refreshing
        await unreachable.dispose()


def test_refusing_revoked_tokens_needs_the_events_that_announce_them() -> None:
    with pytest.raises(ValueError, match="events"):
        create_app(GuardedSettings(), routes=[], refuse_revoked_tokens=True)


class TestOverTheBroker:
    @pytest.fixture
    def app_settings(self, app_settings: GuardedSettings, kafka_settings: dict[str, Any]) -> GuardedSettings:
        return app_settings.model_copy(update=kafka_settings)

    async def test_user_changed_sent_by_the_users_service_reaches_the_tokens_group(
        self, client: httpx.AsyncClient, app_database: BoundDatabase, token_factory: TokenFactory
    ) -> None:
        earlier = token_factory()
        assert (await client.get("/api/things", headers=bearer(earlier))).status_code == 200
        async with app_database.transaction() as session:  # as the users service writes it
            payload = UserEvent(user_id=DEFAULT_SUB, role="user")
            await Outbox(session).add(USER_CHANGED, key=DEFAULT_SUB, payload=payload)

        async def revoked() -> bool:
            return refused(await client.get("/api/things", headers=bearer(earlier)))

        await eventually(revoked, "the earlier token refused")
        group = (await client.get("/health")).json()["details"]["events"]["consumers"]["guarded-tokens"]
        assert (group["handled"], group["dead_lettered"], group["state"]) == (1, 0, "running")
