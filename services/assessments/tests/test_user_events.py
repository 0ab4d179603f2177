"""The users service's events: `user.deleted` erases the user's assessments (answers and ratings with
them), nobody else's; `user.deleted` and `user.changed` end the user's tokens issued before them.

In process, the event is handed to the app's consumer group (`Consumer.deliver`: the same inbox,
transaction and handler as from the broker). Across services over the real broker (the kit's
`kafka_broker`): the real users service deletes the user, its outbox is relayed to `users.users`, and this
app's consumer erases the assessments. Both apps run on the test's database, rolled back with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from starling_assessments.app import create_app
from starling_assessments.models import AreaRating, Assessment, AssessmentQuestion, Question
from starling_assessments.repository import DatabaseAssessmentStores
from starling_assessments.schemas import USER_DELETED, UserEventIn
from starling_assessments.service import AssessmentsService
from starling_assessments.settings import AssessmentsSettings
from starling_core.app import ServiceApp
from starling_core.db import Database
from starling_core.events import Consumer, Events, Outcome, topics
from starling_core.revocations import REVOKED as REVOKED_DETAIL
from starling_core.revocations import consumer_group
from starling_testkit import AppFactory, BoundDatabase, FrozenClock, in_process
from starling_testkit.tokens import ADMIN_SUB, DEFAULT_SUB, TEST_JWT_SECRET, TokenFactory
from starling_users.app import create_app as create_users_app
from starling_users.models import UsersBase
from starling_users.settings import UsersSettings

Bank = dict[str, list[Question]]
ASSESSMENTS = "/api/v1/assessments"
TIMEOUT = 20.0  # seconds the relay, the broker and the consumer may take on a loaded 2-core machine


def consumer_of(database: Database) -> Consumer[Any]:
    """The app's consumer group, as its lifespan builds it, on the test's database."""
    stores = DatabaseAssessmentStores(database)
    return Consumer(stores, "assessments", retry_delays=()).on(
        USER_DELETED, AssessmentsService(stores).forget_user
    )


def revoking_consumer_of(app: ServiceApp) -> Consumer[Any]:
    """The app's consumer group that ends tokens, as core's create_app builds it."""
    assert app.revocations is not None
    return app.revocations.consumer(consumer_group("assessments"), retry_delays=())


async def take_one(client: httpx.AsyncClient, headers: dict[str, str], bank: Bank, title: str) -> str:
    """A submitted assessment of sql (answers and ratings stored), as `headers`' user; its id."""
    created = await client.post(ASSESSMENTS, json={"title": title, "skill_areas": ["sql"]}, headers=headers)
    assert created.status_code == 201, created.text
    assessment_id: str = created.json()["id"]
    for question in bank["sql"]:
        await client.put(
            f"{ASSESSMENTS}/{assessment_id}/answers/{question.id}", json={"value": 4}, headers=headers
        )
    assert (await client.post(f"{ASSESSMENTS}/{assessment_id}/submit", headers=headers)).status_code == 200
    return assessment_id


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def rows_of(database: Database, assessment_ids: list[str]) -> int:
    """Rows left anywhere for these assessments: themselves, their questions and answers, their ratings."""
    async with database.session() as session:
        total = 0
        for model in (AssessmentQuestion, AreaRating):
            statement = select(func.count()).select_from(model).where(model.assessment_id.in_(assessment_ids))
            total += int(await session.scalar(statement) or 0)
        statement = select(func.count()).select_from(Assessment).where(Assessment.id.in_(assessment_ids))
        return total + int(await session.scalar(statement) or 0)


async def test_user_deleted_erases_the_users_assessments_and_no_one_elses(
    bank: Bank, client: httpx.AsyncClient, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    ada, bob = bearer(token_factory()), bearer(token_factory(sub="bob"))
    admin = bearer(token_factory(sub=ADMIN_SUB, scopes=["assessments:read", "assessments:admin"]))
    adas = [await take_one(client, ada, bank, "Ada's"), await take_one(client, ada, bank, "Ada's again")]
    draft = (
        await client.post(ASSESSMENTS, json={"title": "Ada's draft", "skill_areas": ["python"]}, headers=ada)
    ).json()
    bobs = await take_one(client, bob, bank, "Bob's")

    deletion = USER_DELETED.new(DEFAULT_SUB, UserEventIn(user_id=DEFAULT_SUB, role="user"))
    consumer = consumer_of(app_database)
    assert [await consumer.deliver(deletion), await consumer.deliver(deletion)] == [
        Outcome.HANDLED,
        Outcome.DUPLICATE,
    ]

    listed = (await client.get(ASSESSMENTS, headers=admin)).json()["items"]
    assert [item["id"] for item in listed] == [bobs]
    for gone in (*adas, draft["id"]):
        assert (await client.get(f"{ASSESSMENTS}/{gone}", headers=admin)).status_code == 404
    assert await rows_of(app_database, [*adas, draft["id"]]) == 0
    assert await rows_of(app_database, [bobs]) > 1  # Bob's, with its answers and ratings
    assert (await client.get(f"{ASSESSMENTS}/{bobs}/rating", headers=bob)).json()["overall"] == 4.0


REVOKED = {"detail": REVOKED_DETAIL}


@pytest.mark.parametrize("kind", [topics.USER_CHANGED, topics.USER_DELETED])
async def test_a_users_tokens_from_before_the_event_are_refused_and_later_ones_are_not(
    bank: Bank,
    client: httpx.AsyncClient,
    app: ServiceApp,
    token_factory: TokenFactory,
    frozen_clock: FrozenClock,
    kind: Any,
) -> None:
    earlier = bearer(token_factory())
    adas = await take_one(client, earlier, bank, "Ada's")
    event = kind.new(
        DEFAULT_SUB, topics.UserEvent(user_id=DEFAULT_SUB, role="user"), occurred_at=frozen_clock.tick(5)
    )

    assert await revoking_consumer_of(app).deliver(event) == Outcome.HANDLED

    for response in (
        await client.get(ASSESSMENTS, headers=earlier),
        await client.get(f"{ASSESSMENTS}/{adas}/rating", headers=earlier),
        await client.post(ASSESSMENTS, json={"title": "After", "skill_areas": ["sql"]}, headers=earlier),
        await client.get("/api/v1/skill-areas", headers=earlier),
    ):
        assert (response.status_code, response.json()) == (401, REVOKED)
    assert (await client.get(ASSESSMENTS, headers=bearer(token_factory(sub="bob")))).status_code == 200
    frozen_clock.tick(1)  # a token issued after the event: the user logged in again (after a change)
    assert (await client.get(ASSESSMENTS, headers=bearer(token_factory()))).status_code == 200


# --- across services, over the real broker -------------------------------------------------------------


def fast_relay(settings: AssessmentsSettings, *, database: Database) -> ServiceApp:
    """The app with its own relay polling often, so events move while the test runs."""
    return create_app(settings, database=database, events=Events(settings, poll_interval=0.05))


class TestAcrossServices:
    @pytest.fixture
    def app_settings(
        self, app_settings: AssessmentsSettings, kafka_settings: dict[str, Any]
    ) -> AssessmentsSettings:
        return app_settings.model_copy(update=kafka_settings)

    @pytest.fixture
    def app_factory(self) -> AppFactory:
        return fast_relay

    @pytest.fixture
    async def users(
        self, app_database: BoundDatabase, kafka_settings: dict[str, Any]
    ) -> AsyncIterator[httpx.AsyncClient]:
        """The real users service on the same broker, with an administrator; its tables are created in
        the test's transaction and rolled back with it."""
        async with app_database.transaction() as session:
            await session.run_sync(lambda sync: UsersBase.metadata.create_all(sync.connection()))
        settings = UsersSettings(
            env="test",
            jwt_secret=TEST_JWT_SECRET,
            rate_limit_backend="memory",
            admin_email="admin@starling.dev",
            admin_password="starling-admin",
            password_time_cost=1,
            password_memory_cost=1024,
            password_parallelism=1,
            **kafka_settings,
        )
        users_app = create_users_app(
            settings, database=app_database, events=Events(settings, poll_interval=0.05)
        )
        async with (
            in_process(users_app) as transport,
            httpx.AsyncClient(transport=transport, base_url="http://users") as client,
        ):
            yield client

    async def test_a_user_deleted_in_users_loses_their_assessments_here(
        self, bank: Bank, client: httpx.AsyncClient, users: httpx.AsyncClient
    ) -> None:
        registered = await users.post(
            "/users", json={"name": "Ada", "email": "ada@example.com", "password": "correct-horse"}
        )
        ada_id = registered.json()["id"]
        ada = await log_in(users, "ada@example.com", "correct-horse")
        admin = await log_in(users, "admin@starling.dev", "starling-admin")
        adas = await take_one(client, ada, bank, "Ada's")
        admins = await take_one(client, admin, bank, "The admin's")

        assert (await users.delete(f"/users/{ada_id}", headers=admin)).status_code == 204

        async with asyncio.timeout(TIMEOUT):
            while (await client.get(f"{ASSESSMENTS}/{adas}", headers=admin)).status_code != 404:  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # the event travels through the broker in other tasks
        listed = (await client.get(ASSESSMENTS, headers=admin)).json()["items"]
        assert [item["id"] for item in listed] == [admins]
        consumers = (await client.get("/health")).json()["details"]["events"]["consumers"]
        assert (consumers["assessments"]["handled"], consumers["assessments"]["dead_lettered"]) == (1, 0)
        async with asyncio.timeout(TIMEOUT):
            while consumers["assessments-tokens"]["handled"] < 1:
                await asyncio.sleep(0.05)  # the other group takes the same event at its own pace
                consumers = (await client.get("/health")).json()["details"]["events"]["consumers"]
        refused = await client.post(ASSESSMENTS, json={"title": "Ghost", "skill_areas": ["sql"]}, headers=ada)
        assert (refused.status_code, refused.json()) == (401, REVOKED)  # the deleted user's token is void


async def log_in(users: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await users.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])
