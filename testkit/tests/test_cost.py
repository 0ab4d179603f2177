"""An isolated test costs two round trips of its own, and what one test does to the shared
connection never reaches the next."""

from __future__ import annotations

import pytest

from .conftest import dedent

# A listener on the engine records every statement the database receives, teardown included; the
# next test reads what the previous one cost.
RECORDER = dedent(
    """
    import pytest
    from sqlalchemy import event

    SEEN = []

    @pytest.fixture(scope="session", autouse=True)
    def record_statements(db_engine):
        def record(conn, cursor, statement, parameters, context, executemany):
            SEEN.append(" ".join(statement.split())[:40])
        def begin(conn):
            SEEN.append("<begin>")
        def rollback(conn):
            SEEN.append("<rollback>")
        event.listen(db_engine.sync_engine, "before_cursor_execute", record)
        event.listen(db_engine.sync_engine, "begin", begin)
        event.listen(db_engine.sync_engine, "rollback", rollback)
        yield
        event.remove(db_engine.sync_engine, "before_cursor_execute", record)
        event.remove(db_engine.sync_engine, "begin", begin)
        event.remove(db_engine.sync_engine, "rollback", rollback)
    """
)


def test_a_database_test_costs_begin_and_one_rollback(project: pytest.Pytester, backend: str) -> None:
    project.makeconftest(project.path.joinpath("conftest.py").read_text() + "\n" + RECORDER)
    project.makepyfile(
        test_cost=dedent(
            """
            from sqlalchemy import func, select
            from conftest import Note, SEEN

            async def add_and_count(db_session):
                db_session.add(Note(text="a"))
                await db_session.flush()
                return await db_session.scalar(select(func.count()).select_from(Note))

            async def test_1(db_session):
                assert await add_and_count(db_session) == 1
                SEEN.clear()

            async def test_2_cost_of_one_test(db_session):
                # test_1's teardown: one ROLLBACK, no ROLLBACK TO SAVEPOINT before it; this test's
                # setup: one BEGIN (which core's SQLite engine and asyncpg both send through the driver
                # itself, not as a statement through a cursor).
                assert SEEN == ["<rollback>", "<begin>"]
                SEEN.clear()
                assert await add_and_count(db_session) == 1
                assert [s.split()[0] for s in SEEN] == ["SAVEPOINT", "INSERT", "SELECT"], SEEN

            async def test_3_savepoint_names_repeat(db_session):
                # The same SQL text every test, so PostgreSQL's prepared statements are reused.
                SEEN.clear()
                await add_and_count(db_session)
                assert "SAVEPOINT sa_savepoint_1" in SEEN, SEEN
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=3)


def test_what_a_test_does_to_the_connection_stays_in_that_test(
    project: pytest.Pytester, backend: str
) -> None:
    project.makepyfile(
        test_connection=dedent(
            """
            from sqlalchemy import func, insert, select
            from conftest import Note

            async def count(db_connection):
                return await db_connection.scalar(select(func.count()).select_from(Note))

            async def test_1_ends_the_outer_transaction_and_starts_another(db_connection):
                await db_connection.rollback()
                await db_connection.execute(insert(Note).values(text="left open"))

            async def test_2_starts_clean(db_connection, db_session):
                assert await count(db_connection) == 0
                db_session.add(Note(text="kept"))
                await db_session.commit()
                assert await count(db_connection) == 1

            async def test_3_invalidates_its_connection(db_connection):
                await db_connection.invalidate()

            async def test_4_gets_a_working_one(db_connection, db_session):
                assert await count(db_connection) == 0
                db_session.add(Note(text="again"))
                await db_session.flush()
                assert await count(db_connection) == 1

            async def test_5_closes_its_session_itself(db_session):
                db_session.add(Note(text="x"))
                await db_session.flush()
                await db_session.close()

            async def test_6_nothing_survived(db_session):
                assert await db_session.scalar(select(func.count()).select_from(Note)) == 0
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend)
    result.assert_outcomes(passed=6)


def test_a_connection_the_server_dropped_is_replaced(project: pytest.Pytester, shared_postgres: str) -> None:
    project.makepyfile(
        test_dropped=dedent(
            """
            from sqlalchemy import func, select, text
            from conftest import Note

            async def test_1_server_drops_the_connection(db_connection, db_engine):
                db_connection_pid = await db_connection.scalar(text("SELECT pg_backend_pid()"))
                async with db_engine.connect() as other:
                    await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": db_connection_pid})

            async def test_2_runs_on_a_new_one(db_session):
                db_session.add(Note(text="after"))
                await db_session.commit()
                assert await db_session.scalar(select(func.count()).select_from(Note)) == 1
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--db", "postgres")
    result.assert_outcomes(passed=2)
