"""Factories persist through the test's session, with keys from the database, and roll back."""

from __future__ import annotations

import pytest

from .conftest import dedent


def test_bound_factory_persists_in_the_test_transaction(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(
        test_factories=dedent(
            """
            from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
            from sqlalchemy import func, select
            from conftest import Note

            class NoteFactory(SQLAlchemyFactory[Note]):
                text = "from a factory"

            async def test_1_create(bind_factory, client):
                notes = bind_factory(NoteFactory)
                first = await notes.create_async()
                more = await notes.create_batch_async(2)
                assert first.id is not None and first.text == "from a factory"
                assert sorted(n.id for n in [first, *more]) == [first.id, first.id + 1, first.id + 2]
                assert (await client.get("/notes")).json() == {"count": 3}

            async def test_2_rolled_back(db_session):
                assert await db_session.scalar(select(func.count()).select_from(Note)) == 0
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend).assert_outcomes(passed=2)
