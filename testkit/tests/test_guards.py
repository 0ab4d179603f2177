"""A test that leaks a task or a connection fails, and the failure names the leak."""

from __future__ import annotations

import pytest

from .conftest import dedent


def test_leaked_task_fails_its_test_and_is_named(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_leak=dedent(
            """
            import asyncio

            async def forever():
                await asyncio.Event().wait()

            async def test_leaks_a_task():
                asyncio.create_task(forever(), name="orphan")

            async def test_after_the_leak_is_clean():
                pass
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*task left pending: orphan running forever*"])


def test_leaked_connection_fails_its_test_and_is_named(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(
        test_leak=dedent(
            """
            KEEP = []

            async def test_leaks_a_connection(db_engine):
                KEEP.append(await db_engine.connect())

            async def test_closes_its_connection(db_engine):
                async with db_engine.connect():
                    pass
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*test_leaks_a_connection*", "*database connection left checked out, from *test_leak.py:4*"]
    )


def test_max_queries_fails_listing_the_statements(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(
        test_queries=dedent(
            """
            from sqlalchemy import select
            from conftest import Note

            async def test_within_the_limit(db_session, assert_max_queries):
                db_session.add(Note(text="a"))
                await db_session.commit()
                with assert_max_queries(1) as seen:
                    await db_session.scalar(select(Note.text))
                assert len(seen) == 1

            async def test_n_plus_one(db_session, assert_max_queries):
                with assert_max_queries(2):
                    for n in range(3):
                        await db_session.scalar(select(Note.id).where(Note.id == n))
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*expected at most 2 queries, ran 3:*", "*1. SELECT notes.id*"])
