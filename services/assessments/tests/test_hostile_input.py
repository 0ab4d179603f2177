"""Hostile input to the assessments service: a 4xx with a JSON `detail`, never a 500, on SQLite and
PostgreSQL."""

from __future__ import annotations

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
