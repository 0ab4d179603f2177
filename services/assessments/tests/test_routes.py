"""Every route, through HTTP: `client` is anonymous, `auth_client` a user (assessments:read and :write),
`admin_client` an administrator (assessments:admin too)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from starling_assessments.models import Question
from starling_assessments.routes import ASSESSMENTS_ADMIN, ASSESSMENTS_READ, ASSESSMENTS_WRITE
from starling_testkit import TokenFactory
from starling_testkit.queries import MaxQueries

Bank = dict[str, list[Question]]
ASSESSMENTS = "/api/v1/assessments"
QUESTIONS = "/api/v1/questions"
ASSESSMENT_FIELDS = {"id", "title", "skill_areas", "status", "created_at", "submitted_at"}


async def create(client: httpx.AsyncClient, *areas: str, title: str = "Where I stand") -> dict[str, Any]:
    response = await client.post(ASSESSMENTS, json={"title": title, "skill_areas": list(areas)})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def answer(
    client: httpx.AsyncClient, assessment_id: str, question_id: str, value: Any
) -> httpx.Response:
    return await client.put(f"{ASSESSMENTS}/{assessment_id}/answers/{question_id}", json={"value": value})


def stranger(client: httpx.AsyncClient, token_factory: TokenFactory) -> dict[str, str]:
    """Headers of another user holding the same scopes."""
    return {"Authorization": f"Bearer {token_factory(sub='someone-else')}"}


# --- the flow, start to end ------------------------------------------------------------------------------


async def test_a_user_takes_an_assessment_from_creation_to_rating(
    auth_client: httpx.AsyncClient, bank: Bank
) -> None:
    areas = (await auth_client.get("/api/v1/skill-areas")).json()
    assert areas == [
        {"skill_area": "python", "questions": 3},
        {"skill_area": "sql", "questions": 2},
        {"skill_area": "testing", "questions": 4},
    ]

    created = await create(auth_client, "sql", "testing", title="  Half-year review  ")
    assert set(created) == ASSESSMENT_FIELDS
    assert (created["title"], created["skill_areas"], created["status"]) == (
        "Half-year review",
        ["sql", "testing"],
        "draft",
    )
    assert created["submitted_at"] is None

    questions = (await auth_client.get(f"{ASSESSMENTS}/{created['id']}/questions")).json()
    assert questions == [
        {"question_id": q.id, "skill_area": q.skill_area, "text": q.text}
        for q in bank["sql"] + bank["testing"]
    ]

    values = {bank["sql"][0].id: 2, bank["sql"][1].id: 3, bank["testing"][0].id: 5, bank["testing"][1].id: 4}
    for question_id, value in values.items():
        response = await answer(auth_client, created["id"], question_id, value)
        assert response.status_code == 200
        assert response.json() == {"question_id": question_id, "value": value}

    submitted = await auth_client.post(f"{ASSESSMENTS}/{created['id']}/submit")
    assert submitted.status_code == 200
    assert submitted.json()["status"] == "completed"
    assert submitted.json()["submitted_at"] is not None

    rating = await auth_client.get(f"{ASSESSMENTS}/{created['id']}/rating")
    assert rating.status_code == 200
    assert rating.json() == {
        "overall": 3.5,  # (5/2 + 9/2) / 2
        "areas": [
            {"skill_area": "sql", "rating": 2.5, "confidence": 1.0, "answered": 2, "questions": 2},
            {"skill_area": "testing", "rating": 4.5, "confidence": 0.5, "answered": 2, "questions": 4},
        ],
    }
    assert (await auth_client.get(f"{ASSESSMENTS}/{created['id']}")).json() == submitted.json()


# --- POST /api/v1/assessments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"skill_areas": ["sql"]}, ["body", "title"]),
        ({"title": "", "skill_areas": ["sql"]}, ["body", "title"]),
        ({"title": "   ", "skill_areas": ["sql"]}, ["body", "title"]),
        ({"title": "x" * 201, "skill_areas": ["sql"]}, ["body", "title"]),
        ({"title": 7, "skill_areas": ["sql"]}, ["body", "title"]),
        ({"title": "Review"}, ["body", "skill_areas"]),
        ({"title": "Review", "skill_areas": []}, ["body", "skill_areas"]),
        ({"title": "Review", "skill_areas": "sql"}, ["body", "skill_areas"]),
        ({"title": "Review", "skill_areas": ["sql", "python", "sql"]}, ["body", "skill_areas"]),
        ({"title": "Review", "skill_areas": ["sql", "cooking"]}, ["body", "skill_areas", 1]),
        ({"title": "Review", "skill_areas": ["SQL"]}, ["body", "skill_areas", 0]),
        ({"title": "Review", "skill_areas": [3]}, ["body", "skill_areas", 0]),
        ({"title": "Review", "skill_areas": ["sql"], "owner": "someone"}, ["body", "owner"]),
    ],
    ids=[
        "no title",
        "empty title",
        "blank title",
        "title of 201",
        "title not text",
        "no skill areas",
        "empty skill areas",
        "skill areas not a list",
        "a repeated skill area",
        "an unknown skill area",
        "a skill area not a slug",
        "a skill area not text",
        "an unknown field",
    ],
)
async def test_invalid_assessments_are_422_naming_the_field(
    auth_client: httpx.AsyncClient, bank: Bank, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = await auth_client.post(ASSESSMENTS, json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


async def test_a_title_of_200_characters_after_trimming_is_accepted(
    auth_client: httpx.AsyncClient, bank: Bank
) -> None:
    created = await create(auth_client, "sql", title=f"  {'x' * 200}  ")

    assert created["title"] == "x" * 200


async def test_creating_needs_a_token_and_the_write_scope(
    client: httpx.AsyncClient, token_factory: TokenFactory, bank: Bank
) -> None:
    body = {"title": "Review", "skill_areas": ["sql"]}
    read_only = {"Authorization": f"Bearer {token_factory(scopes=[ASSESSMENTS_READ])}"}

    anonymous = await client.post(ASSESSMENTS, json=body)
    refused = await client.post(ASSESSMENTS, json=body, headers=read_only)

    assert anonymous.status_code == 401
    assert "Authorization" in anonymous.json()["detail"]
    assert refused.status_code == 403
    assert ASSESSMENTS_WRITE in refused.json()["detail"]


# --- reading: one, its questions, the list ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["", "/questions", "/rating"])
async def test_someone_elses_assessment_is_404(
    auth_client: httpx.AsyncClient, token_factory: TokenFactory, bank: Bank, path: str
) -> None:
    created = await create(auth_client, "sql")

    response = await auth_client.get(
        f"{ASSESSMENTS}/{created['id']}{path}", headers=stranger(auth_client, token_factory)
    )

    assert response.status_code == 404
    assert response.json() == {"detail": f"Assessment {created['id']} not found"}


async def test_an_admin_reads_anyones_assessment(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient, bank: Bank
) -> None:
    created = await create(auth_client, "sql")

    assert (await admin_client.get(f"{ASSESSMENTS}/{created['id']}")).json() == created
    assert len((await admin_client.get(f"{ASSESSMENTS}/{created['id']}/questions")).json()) == 2


async def test_an_unknown_assessment_is_404_with_a_json_detail(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get(f"{ASSESSMENTS}/missing")

    assert response.status_code == 404
    assert response.json() == {"detail": "Assessment missing not found"}


async def test_reading_needs_the_read_scope(client: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    write_only = {"Authorization": f"Bearer {token_factory(scopes=[ASSESSMENTS_WRITE])}"}

    for path in ("/api/v1/skill-areas", ASSESSMENTS, f"{ASSESSMENTS}/any", f"{ASSESSMENTS}/any/rating"):
        assert (await client.get(path)).status_code == 401
        response = await client.get(path, headers=write_only)
        assert response.status_code == 403
        assert ASSESSMENTS_READ in response.json()["detail"]


async def test_listing_questions_is_two_queries_however_many_there_are(
    auth_client: httpx.AsyncClient, bank: Bank, assert_max_queries: MaxQueries
) -> None:
    created = await create(auth_client, "python", "sql", "testing")

    # the token's revocation (revocations.py), the assessment, then its questions
    with assert_max_queries(3):
        response = await auth_client.get(f"{ASSESSMENTS}/{created['id']}/questions")

    assert len(response.json()) == 9


async def test_the_list_is_the_callers_own_paged_and_filtered_by_status(
    auth_client: httpx.AsyncClient, token_factory: TokenFactory, bank: Bank
) -> None:
    ids = [(await create(auth_client, "sql", title=f"Review {n}"))["id"] for n in range(5)]
    await auth_client.post(
        ASSESSMENTS,
        json={"title": "Not mine", "skill_areas": ["sql"]},
        headers=stranger(auth_client, token_factory),
    )
    for assessment_id in ids[:2]:
        await answer(auth_client, assessment_id, bank["sql"][0].id, 3)
        assert (await auth_client.post(f"{ASSESSMENTS}/{assessment_id}/submit")).status_code == 200

    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        page = (await auth_client.get(ASSESSMENTS, params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    drafts = (await auth_client.get(ASSESSMENTS, params={"status": "draft"})).json()
    completed = (await auth_client.get(ASSESSMENTS, params={"status": "completed"})).json()

    assert seen == ids
    assert cursor is None
    assert [item["id"] for item in drafts["items"]] == ids[2:]
    assert [item["id"] for item in completed["items"]] == ids[:2]
    assert all(item["status"] == "completed" for item in completed["items"])


async def test_an_admin_lists_everyones(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient, token_factory: TokenFactory, bank: Bank
) -> None:
    mine = await create(auth_client, "sql")
    theirs = (
        await auth_client.post(
            ASSESSMENTS,
            json={"title": "Theirs", "skill_areas": ["sql"]},
            headers=stranger(auth_client, token_factory),
        )
    ).json()

    listed = (await admin_client.get(ASSESSMENTS)).json()

    assert [item["id"] for item in listed["items"]] == [mine["id"], theirs["id"]]


@pytest.mark.parametrize(
    "params",
    [
        {"status": "submitted"},
        {"status": ""},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "x"},
        {"cursor": "e30"},
    ],
    ids=[
        "unknown status",
        "empty status",
        "limit 0",
        "limit 201",
        "limit not a number",
        "a cursor it did not write",
    ],
)
async def test_a_bad_list_query_is_422(auth_client: httpx.AsyncClient, params: dict[str, str]) -> None:
    response = await auth_client.get(ASSESSMENTS, params=params)

    assert response.status_code == 422
    assert [error["loc"][:2] for error in response.json()["detail"]] == [["query", next(iter(params))]]


# --- PUT .../answers/{question_id} -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"value": 0}, ["body", "value"]),
        ({"value": 6}, ["body", "value"]),
        ({"value": -1}, ["body", "value"]),
        ({"value": 3.5}, ["body", "value"]),
        ({"value": "3"}, ["body", "value"]),
        ({"value": True}, ["body", "value"]),
        ({"value": None}, ["body", "value"]),
        ({}, ["body", "value"]),
        ({"value": 3, "note": "x"}, ["body", "note"]),
    ],
    ids=["0", "6", "negative", "a fraction", "text", "a boolean", "null", "missing", "an unknown field"],
)
async def test_an_answer_outside_1_to_5_is_422(
    auth_client: httpx.AsyncClient, bank: Bank, body: dict[str, Any], loc: list[str]
) -> None:
    created = await create(auth_client, "sql")

    response = await auth_client.put(f"{ASSESSMENTS}/{created['id']}/answers/{bank['sql'][0].id}", json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


@pytest.mark.parametrize("value", [1, 5])
async def test_the_ends_of_the_scale_are_answers(
    auth_client: httpx.AsyncClient, bank: Bank, value: int
) -> None:
    created = await create(auth_client, "sql")

    response = await answer(auth_client, created["id"], bank["sql"][0].id, value)

    assert response.status_code == 200


async def test_a_question_not_in_the_assessment_is_422(auth_client: httpx.AsyncClient, bank: Bank) -> None:
    created = await create(auth_client, "sql")

    for question_id in (bank["python"][0].id, "no-such-question"):
        response = await answer(auth_client, created["id"], question_id, 3)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["path", "question_id"]


async def test_an_answer_changes_until_submission_and_then_is_frozen(
    auth_client: httpx.AsyncClient, bank: Bank
) -> None:
    created = await create(auth_client, "sql")
    question = bank["sql"][0].id
    assert (await answer(auth_client, created["id"], question, 1)).status_code == 200
    assert (await answer(auth_client, created["id"], question, 4)).json() == {
        "question_id": question,
        "value": 4,
    }
    await auth_client.post(f"{ASSESSMENTS}/{created['id']}/submit")

    frozen = await answer(auth_client, created["id"], question, 5)

    assert frozen.status_code == 409
    assert "already submitted" in frozen.json()["detail"]
    assert (await auth_client.get(f"{ASSESSMENTS}/{created['id']}/rating")).json()["overall"] == 4.0


async def test_only_the_owner_answers_and_submits(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient, token_factory: TokenFactory, bank: Bank
) -> None:
    created = await create(auth_client, "sql")
    question = bank["sql"][0].id
    other = stranger(auth_client, token_factory)

    for client, headers in ((auth_client, other), (admin_client, {})):
        put = await client.put(
            f"{ASSESSMENTS}/{created['id']}/answers/{question}", json={"value": 3}, headers=headers
        )
        submit = await client.post(f"{ASSESSMENTS}/{created['id']}/submit", headers=headers)
        assert (put.status_code, submit.status_code) == (404, 404)


# --- POST .../submit and GET .../rating ---------------------------------------------------------------------


async def test_submitting_with_no_answers_is_409(auth_client: httpx.AsyncClient, bank: Bank) -> None:
    created = await create(auth_client, "sql")

    response = await auth_client.post(f"{ASSESSMENTS}/{created['id']}/submit")

    assert response.status_code == 409
    assert response.json() == {"detail": "No answers found"}
    assert (await auth_client.get(f"{ASSESSMENTS}/{created['id']}")).json()["status"] == "draft"


async def test_submitting_twice_is_409(auth_client: httpx.AsyncClient, bank: Bank) -> None:
    created = await create(auth_client, "sql")
    await answer(auth_client, created["id"], bank["sql"][0].id, 3)
    first = await auth_client.post(f"{ASSESSMENTS}/{created['id']}/submit")

    second = await auth_client.post(f"{ASSESSMENTS}/{created['id']}/submit")

    assert second.status_code == 409
    assert second.json() == {
        "detail": f"Assessment {created['id']} is already submitted; its answers are frozen"
    }
    assert (await auth_client.get(f"{ASSESSMENTS}/{created['id']}")).json() == first.json()


async def test_submitting_an_unknown_assessment_is_404(auth_client: httpx.AsyncClient) -> None:
    assert (await auth_client.post(f"{ASSESSMENTS}/missing/submit")).status_code == 404


async def test_there_is_no_rating_before_submission(auth_client: httpx.AsyncClient, bank: Bank) -> None:
    created = await create(auth_client, "sql")
    await answer(auth_client, created["id"], bank["sql"][0].id, 3)

    response = await auth_client.get(f"{ASSESSMENTS}/{created['id']}/rating")

    assert response.status_code == 404
    assert "not been submitted" in response.json()["detail"]


async def test_reading_a_rating_is_two_queries_however_many_areas(
    auth_client: httpx.AsyncClient, bank: Bank, assert_max_queries: MaxQueries
) -> None:
    created = await create(auth_client, "python", "sql", "testing")
    for area in ("python", "sql", "testing"):
        await answer(auth_client, created["id"], bank[area][0].id, 4)
    await auth_client.post(f"{ASSESSMENTS}/{created['id']}/submit")

    # the token's revocation (revocations.py), the assessment, then its areas' ratings
    with assert_max_queries(3):
        response = await auth_client.get(f"{ASSESSMENTS}/{created['id']}/rating")

    assert [area["skill_area"] for area in response.json()["areas"]] == ["python", "sql", "testing"]


# --- the question bank (administrators) ---------------------------------------------------------------------


async def test_an_admin_adds_a_question_and_users_can_then_choose_its_area(
    admin_client: httpx.AsyncClient, auth_client: httpx.AsyncClient
) -> None:
    response = await admin_client.post(
        QUESTIONS, json={"skill_area": "rust", "text": " I use the borrow checker. "}
    )

    assert response.status_code == 201
    added = response.json()
    assert set(added) == {"id", "skill_area", "text", "created_at", "retired_at"}
    assert (added["skill_area"], added["text"], added["retired_at"]) == (
        "rust",
        "I use the borrow checker.",
        None,
    )
    assert (await auth_client.get("/api/v1/skill-areas")).json() == [{"skill_area": "rust", "questions": 1}]
    created = await create(auth_client, "rust")
    assert [
        q["question_id"] for q in (await auth_client.get(f"{ASSESSMENTS}/{created['id']}/questions")).json()
    ] == [added["id"]]


async def test_the_same_question_twice_in_an_area_is_409(admin_client: httpx.AsyncClient) -> None:
    body = {"skill_area": "rust", "text": "I use the borrow checker."}
    await admin_client.post(QUESTIONS, json=body)

    response = await admin_client.post(QUESTIONS, json=body)

    assert response.status_code == 409
    assert response.json() == {"detail": "This skill area already has a question with this text"}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"text": "A question"}, ["body", "skill_area"]),
        ({"skill_area": "Rust", "text": "A question"}, ["body", "skill_area"]),
        ({"skill_area": "a" * 41, "text": "A question"}, ["body", "skill_area"]),
        ({"skill_area": "rust"}, ["body", "text"]),
        ({"skill_area": "rust", "text": "  "}, ["body", "text"]),
        ({"skill_area": "rust", "text": "x" * 501}, ["body", "text"]),
    ],
    ids=["no area", "area not a slug", "area too long", "no text", "blank text", "text of 501"],
)
async def test_an_invalid_question_is_422(
    admin_client: httpx.AsyncClient, body: dict[str, str], loc: list[str]
) -> None:
    response = await admin_client.post(QUESTIONS, json=body)

    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [loc]


async def test_a_retired_question_leaves_new_assessments_and_the_list(
    admin_client: httpx.AsyncClient, auth_client: httpx.AsyncClient, bank: Bank
) -> None:
    before = await create(auth_client, "sql")
    retired_id = bank["sql"][0].id

    response = await admin_client.post(f"{QUESTIONS}/{retired_id}/retire")

    assert response.status_code == 200
    assert response.json()["retired_at"] is not None
    after = await create(auth_client, "sql")
    held = await auth_client.get(f"{ASSESSMENTS}/{before['id']}/questions")
    fresh = await auth_client.get(f"{ASSESSMENTS}/{after['id']}/questions")
    assert retired_id in [q["question_id"] for q in held.json()]
    assert retired_id not in [q["question_id"] for q in fresh.json()]
    in_use = (await admin_client.get(QUESTIONS, params={"skill_area": "sql"})).json()["items"]
    every = (await admin_client.get(QUESTIONS, params={"skill_area": "sql", "retired": "true"})).json()[
        "items"
    ]
    assert [q["id"] for q in in_use] == [bank["sql"][1].id]
    assert [q["id"] for q in every] == [q.id for q in bank["sql"]]


async def test_retiring_an_unknown_question_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post(f"{QUESTIONS}/missing/retire")

    assert response.status_code == 404
    assert response.json() == {"detail": "Question missing not found"}


async def test_the_bank_pages_in_creation_order(admin_client: httpx.AsyncClient, bank: Bank) -> None:
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = (
            await admin_client.get(QUESTIONS, params={"limit": "4"} | ({"cursor": cursor} if cursor else {}))
        ).json()
        seen += [q["id"] for q in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break

    assert seen == [q.id for area in bank.values() for q in area]


async def test_the_bank_is_for_admins_only(auth_client: httpx.AsyncClient, bank: Bank) -> None:
    for response in (
        await auth_client.get(QUESTIONS),
        await auth_client.post(QUESTIONS, json={"skill_area": "rust", "text": "A question"}),
        await auth_client.post(f"{QUESTIONS}/{bank['sql'][0].id}/retire"),
    ):
        assert response.status_code == 403
        assert ASSESSMENTS_ADMIN in response.json()["detail"]


async def test_openapi_documents_every_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {
        "/api/v1/skill-areas",
        ASSESSMENTS,
        f"{ASSESSMENTS}/{{assessment_id}}",
        f"{ASSESSMENTS}/{{assessment_id}}/questions",
        f"{ASSESSMENTS}/{{assessment_id}}/answers/{{question_id}}",
        f"{ASSESSMENTS}/{{assessment_id}}/submit",
        f"{ASSESSMENTS}/{{assessment_id}}/rating",
        QUESTIONS,
        f"{QUESTIONS}/{{question_id}}/retire",
    } <= set(paths)
    assert set(paths[f"{ASSESSMENTS}/{{assessment_id}}/answers/{{question_id}}"]["put"]["responses"]) >= {
        "200",
        "404",
        "409",
        "422",
    }
