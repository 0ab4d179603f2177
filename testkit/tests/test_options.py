"""Installing the kit changes nothing a project did not ask for: no loop change, no leak guard, no
frozen heap, no option that clashes with its own; a suite opts in with `starling_suite = true`."""

from __future__ import annotations

import pytest

from .conftest import dedent

# A project of its own: its own `--db` option, pytest-asyncio's defaults (a loop per test), no kit
# configuration, and the kit installed in the same environment.
OWN_PROJECT_CONFTEST = dedent(
    """
    import pytest

    def pytest_addoption(parser):
        parser.addoption("--db", default="mine", help="the project's own database option")

    @pytest.fixture
    def db_choice(request):
        return request.config.getoption("--db")
    """
)

OWN_PROJECT_TESTS = dedent(
    """
    import asyncio
    import gc

    LOOPS = []

    async def forever():
        await asyncio.Event().wait()

    def test_its_own_option(db_choice):
        assert db_choice == "theirs"

    async def test_first_loop():
        LOOPS.append(asyncio.get_running_loop())

    async def test_second_loop_is_another_one():
        LOOPS.append(asyncio.get_running_loop())
        assert LOOPS[0] is not LOOPS[1]

    async def test_a_pending_task_is_its_own_business():
        asyncio.get_running_loop().create_task(forever())

    def test_the_heap_is_not_frozen():
        assert gc.get_freeze_count() == 0
    """
)


def test_a_project_with_its_own_db_option_runs_unchanged(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_mode = auto\n")
    pytester.makeconftest(OWN_PROJECT_CONFTEST)
    pytester.makepyfile(test_own=OWN_PROJECT_TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--db", "theirs")
    result.assert_outcomes(passed=5)
    # and the kit's own option is still there, under its namespaced name
    help_text = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help")
    help_text.stdout.fnmatch_lines(["*--starling-db*", "*--db=DB*the project's own database option*"])


def test_the_kit_fixtures_work_without_opting_in(project: pytest.Pytester) -> None:
    # A suite that did not opt in still gets isolated database tests; those (and only those) run on
    # the session loop, where the engine is.
    project.makeini(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    project.makepyfile(
        test_plain=dedent(
            """
            import asyncio
            from sqlalchemy import func, select
            from conftest import Note

            LOOPS = []

            async def test_1_database(db_session):
                LOOPS.append(asyncio.get_running_loop())
                db_session.add(Note(text="a"))
                await db_session.commit()

            async def test_2_database_again_on_the_same_loop(db_session):
                LOOPS.append(asyncio.get_running_loop())
                assert LOOPS[0] is LOOPS[1]
                assert await db_session.scalar(select(func.count()).select_from(Note)) == 0

            async def test_3_no_database_keeps_its_own_loop():
                assert asyncio.get_running_loop() is not LOOPS[0]
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--starling-db", "sqlite")
    result.assert_outcomes(passed=3)


def test_every_public_fixture_says_what_it_is(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures")
    output = result.stdout.str()
    section = output[output.index("fixtures defined from starling_testkit") :]
    names = [
        "app_factory", "db_metadata", "db_url", "db_engine", "db_connection", "db_session",
        "app_settings", "app_database", "app", "user_scopes", "admin_scopes", "started_app", "client",
        "auth_client", "admin_client", "token_factory", "assert_max_queries", "frozen_clock",
        "live_server", "mock_of", "fake_stream", "fake_publisher", "bind_factory",
    ]  # fmt: skip
    lines = section.splitlines()
    for name in names:
        [where] = [n for n, line in enumerate(lines) if line.split(" ")[0] == name]
        assert "no docstring available" not in lines[where + 1], name
