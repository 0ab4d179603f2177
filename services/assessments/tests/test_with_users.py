"""Across services, in process: a user registers with the real users service, logs in, and with the token
users issued takes an assessment here. Nothing is mocked between the two but the network.

Users is handed the test's database through the kit's seam (`app_database`), as the app under test is, with
its tables created inside the test's transaction: what it writes is rolled back with the test, on SQLite and
PostgreSQL alike."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from starling_assessments.models import Question
from starling_testkit import BoundDatabase, in_process
from starling_testkit.tokens import TEST_JWT_SECRET
from starling_users.app import create_app as create_users_app
from starling_users.models import UsersBase
from starling_users.settings import UsersSettings

Bank = dict[str, list[Question]]
ASSESSMENTS = "/api/v1/assessments"


@pytest.fixture
async def users(
    db_connection: AsyncConnection, app_database: BoundDatabase
) -> AsyncIterator[httpx.AsyncClient]:
    """The users service with its default role grants, signing as this suite's app verifies, and an admin."""
    await db_connection.run_sync(UsersBase.metadata.create_all)  # undone with the test's transaction
    settings = UsersSettings(
        env="test",
        jwt_secret=TEST_JWT_SECRET,
        rate_limit_backend="memory",
        admin_email="admin@starling.dev",
        admin_password="starling-admin",
        # Argon2id at its cheapest: hashing is not what this test is about
        password_time_cost=1,
        password_memory_cost=1024,
        password_parallelism=1,
    )
    async with (
        in_process(create_users_app(settings, database=app_database)) as transport,
        httpx.AsyncClient(transport=transport, base_url="http://users") as client,
    ):
        yield client


async def log_in(users: httpx.AsyncClient, email: str, password: str) -> dict[str, str]:
    response = await users.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_a_user_registered_in_users_completes_an_assessment_with_the_token_users_issued(
    users: httpx.AsyncClient, client: httpx.AsyncClient, bank: Bank
) -> None:
    registered = await users.post(
        "/users", json={"name": "Ada", "email": "ada@example.com", "password": "correct-horse"}
    )
    assert registered.status_code == 201
    ada = await log_in(users, "ada@example.com", "correct-horse")

    created = await client.post(
        ASSESSMENTS, json={"title": "First look", "skill_areas": ["sql"]}, headers=ada
    )
    assert created.status_code == 201, created.text
    assessment = created.json()
    questions = (await client.get(f"{ASSESSMENTS}/{assessment['id']}/questions", headers=ada)).json()
    for question, value in zip(questions, (3, 5), strict=True):
        put = await client.put(
            f"{ASSESSMENTS}/{assessment['id']}/answers/{question['question_id']}",
            json={"value": value},
            headers=ada,
        )
        assert put.status_code == 200
    submitted = await client.post(f"{ASSESSMENTS}/{assessment['id']}/submit", headers=ada)
    rating = await client.get(f"{ASSESSMENTS}/{assessment['id']}/rating", headers=ada)

    assert submitted.json()["status"] == "completed"
    assert rating.json()["overall"] == 4.0
    # the assessment is the user's, as users knows them: the token's subject is their id there
    listed = (await client.get(ASSESSMENTS, headers=ada)).json()["items"]
    assert [item["id"] for item in listed] == [assessment["id"]]
    assert registered.json()["id"] != "test-user-001"


async def test_the_admin_users_made_reads_the_users_assessment_and_another_user_cannot(
    users: httpx.AsyncClient, client: httpx.AsyncClient, bank: Bank
) -> None:
    for name, email in (("Ada", "ada@example.com"), ("Bob", "bob@example.com")):
        await users.post("/users", json={"name": name, "email": email, "password": "correct-horse"})
    ada = await log_in(users, "ada@example.com", "correct-horse")
    bob = await log_in(users, "bob@example.com", "correct-horse")
    admin = await log_in(users, "admin@starling.dev", "starling-admin")
    assessment = (
        await client.post(ASSESSMENTS, json={"title": "Ada's", "skill_areas": ["python"]}, headers=ada)
    ).json()

    assert (await client.get(f"{ASSESSMENTS}/{assessment['id']}", headers=admin)).status_code == 200
    assert (await client.get(f"{ASSESSMENTS}/{assessment['id']}", headers=bob)).status_code == 404
    assert (await client.get("/api/v1/questions", headers=admin)).status_code == 200  # assessments:admin
    assert (await client.get("/api/v1/questions", headers=ada)).status_code == 403
