"""`user.changed` and `user.deleted`: written to the outbox in the transaction of the change they announce,
and relayed to the real broker (the kit's `kafka_broker`) as the spec's messages on `users.users`.

Other tests commit users over real sockets (`live_server`), which leaves their events in the worker's
outbox: every assertion here is about the users its own test made.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from starling_core.app import ServiceApp
from starling_core.db import Database
from starling_core.events import Event, Events, Received
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_core.events.topics import USER_DELETED, USERS, UserEvent
from starling_testkit import AppFactory
from starling_testkit.events import PublishedEvents
from starling_testkit.tokens import ADMIN_SUB
from starling_users.app import create_app
from starling_users.settings import UsersSettings

from .helpers import PASSWORD, bearer, login, register

ROOT = "root@example.com"
TIMEOUT = 20.0  # seconds the relay and the broker may take on a loaded 2-core machine


async def events_of(published: PublishedEvents, user_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(type, payload) of every `users.users` event about `user_id`, oldest first."""
    return [(event.type, event.payload) for event in await published.all(USERS) if event.key == user_id]


async def test_a_role_change_publishes_user_changed_with_the_new_role(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    ada = await register(client)

    await admin_client.patch(f"/users/{ada['id']}", json={"role": "admin"})
    await admin_client.patch(f"/users/{ada['id']}", json={"role": "user"})
    await admin_client.patch(f"/users/{ada['id']}", json={"name": "Ada L.", "role": "user"})  # no change

    assert await events_of(published_events, ada["id"]) == [
        ("user.changed", {"user_id": ada["id"], "role": "admin"}),
        ("user.changed", {"user_id": ada["id"], "role": "user"}),
    ]


async def test_a_password_change_and_a_logout_publish_user_changed_and_a_rename_does_not(
    client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    ada = await register(client)
    token = await login(client)

    renamed = await client.patch(f"/users/{ada['id']}", json={"name": "Ada L."}, headers=bearer(token))
    assert renamed.status_code == 200
    assert await events_of(published_events, ada["id"]) == []

    changed = await client.patch(
        f"/users/{ada['id']}",
        json={"password": "another long password", "current_password": PASSWORD},
        headers=bearer(token),
    )
    assert changed.status_code == 200
    token = (
        await client.post("/auth/token", json={"email": ada["email"], "password": "another long password"})
    ).json()["access_token"]
    assert (await client.post("/auth/logout", headers=bearer(token))).status_code == 204

    assert await events_of(published_events, ada["id"]) == [
        ("user.changed", {"user_id": ada["id"], "role": "user"}),
        ("user.changed", {"user_id": ada["id"], "role": "user"}),
    ]


async def test_a_deletion_publishes_user_deleted_with_the_role_the_user_had(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    ada = await register(client)
    bo = await register(client, email="bo@example.com", name="Bo")
    await admin_client.patch(f"/users/{bo['id']}", json={"role": "admin"})
    token = await login(client)

    assert (await client.delete(f"/users/{ada['id']}", headers=bearer(token))).status_code == 204
    assert (await admin_client.delete(f"/users/{bo['id']}")).status_code == 204

    assert await events_of(published_events, ada["id"]) == [
        ("user.deleted", {"user_id": ada["id"], "role": "user"})
    ]
    assert (await events_of(published_events, bo["id"]))[-1] == (
        "user.deleted",
        {"user_id": bo["id"], "role": "admin"},
    )
    (deleted,) = [event for event in await published_events.of(USER_DELETED) if event.key == ada["id"]]
    assert isinstance(deleted.payload, UserEvent)


async def test_a_refused_change_publishes_nothing(
    admin_client: httpx.AsyncClient, published_events: PublishedEvents
) -> None:
    # the only administrator may neither step down nor go: both are refused, their events with them
    demoted = await admin_client.patch(f"/users/{ADMIN_SUB}", json={"role": "user"})
    deleted = await admin_client.delete(f"/users/{ADMIN_SUB}")

    assert (demoted.status_code, deleted.status_code) == (409, 409)
    assert await events_of(published_events, ADMIN_SUB) == []


# --- over the real broker ---------------------------------------------------------------------------


class TestOverTheBroker:
    """The app's own relay, with a broker configured: what reaches `users.users`."""

    @pytest.fixture
    def app_settings(self, app_settings: UsersSettings, kafka_settings: dict[str, Any]) -> UsersSettings:
        # The administrator comes from the settings, made by the app itself: the kit's `admin_client`
        # writes its user through the test's own session, which must not meet a running relay's reads.
        admin = {"admin_email": ROOT, "admin_password": SecretStr(PASSWORD)}
        return app_settings.model_copy(update={**kafka_settings, **admin})

    @pytest.fixture
    def app_factory(self) -> AppFactory:
        return fast_relay

    @staticmethod
    async def read_users_topic(settings: UsersSettings, keys: set[str], count: int) -> list[Received]:
        """The first `count` messages about `keys` that a new consumer group reads from `users.users`."""
        options = KafkaOptions.from_settings(settings)
        assert options is not None
        found: list[Received] = []
        async with (
            KafkaBroker(options).subscription([USERS], "users-test-reader") as subscription,
            asyncio.timeout(TIMEOUT),
        ):
            while len(found) < count:
                found += [message for message in await subscription.fetch(0.5) if message.key in keys]
        return found

    async def test_the_relay_sends_them_to_the_broker_as_the_specs_messages(
        self, client: httpx.AsyncClient, app_settings: UsersSettings
    ) -> None:
        root = bearer(await login(client, ROOT))
        ada = await register(client)
        bo = await register(client, email="bo@example.com", name="Bo")

        promoted = await client.patch(f"/users/{ada['id']}", json={"role": "admin"}, headers=root)
        assert promoted.status_code == 200
        assert (await client.delete(f"/users/{ada['id']}", headers=root)).status_code == 204
        assert (await client.delete(f"/users/{bo['id']}", headers=root)).status_code == 204

        messages = await self.read_users_topic(app_settings, {ada["id"], bo["id"]}, 3)
        assert {message.topic for message in messages} == {"users.users"}
        ada_events = [
            Event[dict[str, Any]].model_validate_json(m.value) for m in messages if m.key == ada["id"]
        ]
        assert [(event.type, event.key, event.payload) for event in ada_events] == [
            ("user.changed", ada["id"], {"user_id": ada["id"], "role": "admin"}),
            ("user.deleted", ada["id"], {"user_id": ada["id"], "role": "admin"}),
        ]
        (bo_message,) = [m for m in messages if m.key == bo["id"]]
        assert USER_DELETED.parse(bo_message.value).payload == UserEvent(user_id=bo["id"], role="user")
        assert dict(bo_message.headers)["type"] == b"user.deleted"
        health = (await client.get("/health")).json()["details"]["events"]
        assert health["broker"] == "configured"


def fast_relay(settings: UsersSettings, *, database: Database) -> ServiceApp:
    """The app with its own relay polling often, so its events reach the broker while the test runs."""
    return create_app(settings, database=database, events=Events(settings, poll_interval=0.05))
