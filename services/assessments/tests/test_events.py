"""Over HTTP, a submission announces `assessment.completed` once, through the publisher the app is given
(`create_app(publisher=...)`): here the kit's `FakePublisher`."""

from __future__ import annotations

import functools

import httpx
import pytest

from starling_assessments.app import create_app
from starling_assessments.models import Question
from starling_testkit import AppFactory, FakePublisher

Bank = dict[str, list[Question]]


@pytest.fixture
def app_factory(fake_publisher: FakePublisher) -> AppFactory:
    return functools.partial(create_app, publisher=fake_publisher)


async def test_a_submission_over_http_announces_one_completed_event(
    auth_client: httpx.AsyncClient, bank: Bank, fake_publisher: FakePublisher
) -> None:
    created = (
        await auth_client.post("/api/v1/assessments", json={"title": "Review", "skill_areas": ["sql"]})
    ).json()
    for question, value in zip(bank["sql"], (4, 1), strict=True):
        await auth_client.put(
            f"/api/v1/assessments/{created['id']}/answers/{question.id}", json={"value": value}
        )

    submitted = (await auth_client.post(f"/api/v1/assessments/{created['id']}/submit")).json()
    again = await auth_client.post(f"/api/v1/assessments/{created['id']}/submit")

    assert again.status_code == 409
    (event,) = fake_publisher.published
    assert (event.topic, event.type, event.key) == (
        "assessments.assessments",
        "assessment.completed",
        created["id"],
    )
    assert event.payload.model_dump(mode="json") == {
        "assessment_id": created["id"],
        "owner": "test-user-001",
        "overall": 2.5,
        "submitted_at": submitted["submitted_at"],
    }
