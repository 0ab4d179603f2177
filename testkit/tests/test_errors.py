"""A package that forgets a fixture is told, in one line, what to define."""

from __future__ import annotations

import pytest

from .conftest import INI, dedent


def test_missing_app_factory_says_what_to_define(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(
        dedent(
            """
            import pytest
            from sqlalchemy import MetaData

            @pytest.fixture(scope="session")
            def db_metadata():
                return MetaData()
            """
        )
    )
    pytester.makepyfile(test_app=dedent("async def test_it(client):\n    pass\n"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*starling: define an `app_factory` fixture in your conftest.py*"])
    result.stdout.no_fnmatch_line("*Traceback*")


def test_missing_db_metadata_says_what_to_define(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(test_db=dedent("async def test_it(db_session):\n    pass\n"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*starling: define a `db_metadata` fixture in your conftest.py*"])
