"""Hostile input to the assessments service: a 4xx with a JSON `detail`, never a 500, on SQLite and
PostgreSQL."""

from __future__ import annotations

import json

import httpx
import pytest

from starling_core.pagination import encode_cursor

ASSESSMENTS = "/api/v1/assessments"


def locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_cursor_whose_time_is_out_of_range_is_422(
    auth_client: httpx.AsyncClient, created_at: str
) -> None:
    # Times the parser takes whose UTC is outside the years 1..9999 that Python's datetime holds.
    cursor = encode_cursor({"created_at": created_at, "id": "a"})
    response = await auth_client.get(ASSESSMENTS, params={"cursor": cursor})
    assert response.status_code == 422
    assert locs(response) == [["query", "cursor"]]


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", f"{ASSESSMENTS}/a%00", "assessment_id"),
        ("GET", f"{ASSESSMENTS}/a%00/questions", "assessment_id"),
        ("PUT", f"{ASSESSMENTS}/a/answers/q%00", "question_id"),
        ("POST", f"{ASSESSMENTS}/a%00/submit", "assessment_id"),
        ("GET", f"{ASSESSMENTS}/a%00/rating", "assessment_id"),
    ],
)
async def test_a_nul_in_a_path_parameter_is_422(
    auth_client: httpx.AsyncClient, method: str, path: str, name: str
) -> None:
    response = await auth_client.request(method, path, json={"value": 3})
    assert response.status_code == 422
    assert locs(response) == [["path", name]]


@pytest.mark.parametrize("title", ["a\x00b", "\ud800"], ids=["nul", "surrogate"])
async def test_a_title_no_database_stores_is_422(auth_client: httpx.AsyncClient, title: str) -> None:
    body = json.dumps({"title": title, "skill_areas": ["sql"]}).encode()
    response = await auth_client.post(ASSESSMENTS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert locs(response) == [["body", "title"]]
