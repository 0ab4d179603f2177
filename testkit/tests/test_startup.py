"""What a one-test run imports: a developer reruns the test being written, and every module the run
imports but the test does not use is start-up paid each time (issue 15: no slower than pytest-django).

The project is a service's, as the bench's is: its conftest.py imports the app's `create_app`, and the
test uses `db_session` alone. It runs in a subprocess: this one has imported everything already.
"""

from __future__ import annotations

import importlib.metadata
import textwrap

import pytest

from .conftest import INI

CONFTEST = """
import pytest
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.app import create_app
from starling_core.db import Base


class Row(Base):
    __tablename__ = "rows"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


@pytest.fixture
def app_factory():
    return create_app


@pytest.fixture(scope="session")
def db_metadata():
    return Row.metadata
"""

# What such a run leaves out, and what brings each in when a test does use it: migrating (Alembic),
# a token (PyJWT), the app's settings, OpenAPI document and metrics (building an app), a client
# (httpx), factories (polyfactory), a frozen clock (time-machine), a live server (uvicorn), mocks of
# outbound calls (respx: its own plugin imports it, and httpx, in any run where it is installed, so the
# kit does not install it; this workspace does, for two services, hence `-p no:respx` below).
NOT_IMPORTED = (
    "alembic",
    "jwt",
    "pydantic_settings",
    "starling_core.openapi",
    "prometheus_client",
    "httpx",
    "polyfactory",
    "time_machine",
    "uvicorn",
)

TEST = f"""
import sys

from conftest import Row

NOT_IMPORTED = {NOT_IMPORTED!r}


async def test_a_row(db_session):
    db_session.add(Row(name="r"))
    await db_session.flush()
    assert [name for name in NOT_IMPORTED if name in sys.modules] == []
    print("cluster starter imported:", "starling_servers.postgres" in sys.modules)
"""


def test_a_database_test_imports_only_what_it_uses(pytester: pytest.Pytester, backend: str) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_one=textwrap.dedent(TEST))
    result = pytester.runpytest_subprocess("--db", backend, "-s", "-p", "no:respx")
    result.assert_outcomes(passed=1)
    # A SQLite run has no PostgreSQL cluster to start or stop, so it never imports the starter.
    result.stdout.fnmatch_lines([f"*cluster starter imported: {backend == 'postgres'}*"])


def test_the_kit_does_not_install_respx() -> None:
    requirements = importlib.metadata.requires("starling-testkit") or []
    assert [requirement for requirement in requirements if requirement.startswith("respx")] == []


def test_every_name_the_kit_lists_is_importable_from_it() -> None:
    # the lazy map (`_WHERE`) and `__all__` must agree: a name listed but not mapped, or mapped to the
    # wrong module, fails only when a suite first imports it
    import starling_testkit
    from starling_testkit.events import PublishedEvents

    for name in starling_testkit.__all__:
        assert getattr(starling_testkit, name).__name__ == name
    assert starling_testkit.PublishedEvents is PublishedEvents  # the published_events fixture's type
