"""Nothing a test writes survives it: committed directly or through an HTTP request to the app."""

from __future__ import annotations

import sys

import pytest

from .conftest import dedent

ISOLATION_TESTS = dedent(
    """
    from sqlalchemy import func, select
    from conftest import Note

    async def count(db_session):
        return await db_session.scalar(select(func.count()).select_from(Note))

    async def test_1_commit_directly(db_session):
        db_session.add(Note(text="direct"))
        await db_session.commit()
        assert await count(db_session) == 1

    async def test_2_direct_commit_is_gone(db_session):
        assert await count(db_session) == 0

    async def test_3_commit_through_http(client, db_session):
        response = await client.post("/notes", json={"text": "http"})
        assert response.status_code == 201
        assert (await client.get("/notes")).json() == {"count": 1}
        assert await count(db_session) == 1

    async def test_4_http_commit_is_gone(client):
        assert (await client.get("/notes")).json() == {"count": 0}
    """
)


def test_commits_inside_a_test_are_rolled_back(project: pytest.Pytester, backend: str) -> None:
    assert sys.version_info[:2] >= (3, 11)
    project.makepyfile(test_notes=ISOLATION_TESTS)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=4)


def test_isolation_holds_when_tests_run_in_reverse(project: pytest.Pytester, backend: str) -> None:
    # Each "is gone" test also passes first, so order alone cannot make them pass.
    project.makepyfile(test_notes=ISOLATION_TESTS)
    result = project.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--db",
        backend,
        "test_notes.py::test_3_commit_through_http",
        "test_notes.py::test_2_direct_commit_is_gone",
        "test_notes.py::test_1_commit_directly",
        "test_notes.py::test_4_http_commit_is_gone",
    )
    result.assert_outcomes(passed=4)
