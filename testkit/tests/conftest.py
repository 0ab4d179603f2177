"""The kit is tested the way a package uses it: a small project run by `pytester` in a subprocess."""

from __future__ import annotations

import os
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from starling_testkit import options

pytest_plugins = ["pytester"]

# As the workspace's own pyproject does, the projects leave out faker's, time-machine's and anyio's
# pytest plugins, which no test here uses: faker's alone is a quarter of a second at every process start.
INI = """
[pytest]
addopts = -p no:faker -p no:time_machine -p no:anyio
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
filterwarnings = error
starling_suite = true
"""

# A package's conftest.py, as a team would write it: a model, an app factory, the metadata.
PROJECT_CONFTEST = """
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from sqlalchemy import func, select

from starling_core.app import create_app
from starling_core.auth import Scopes, requires_scopes
from starling_core.db import Base
from starling_core.settings import ServiceSettings


class NoteBase(Base):
    __abstract__ = True


class Note(NoteBase):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(50))


@asynccontextmanager
async def lifespan(database):
    yield {"database": database}


async def add_note(request: Request) -> JSONResponse:
    text = (await request.json())["text"]
    async with request.state["database"].transaction() as session:
        session.add(Note(text=text))
    return JSONResponse({"ok": True}, status_code=201)


async def count_notes(request: Request) -> JSONResponse:
    async with request.state["database"].session() as session:
        total = await session.scalar(select(func.count()).select_from(Note))
    return JSONResponse({"count": total})


@requires_scopes("notes:read")
async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"sub": request.user.identity, "scopes": sorted(request.auth.scopes)})


def build(settings: ServiceSettings, *, database=None):
    return create_app(settings, database=database, lifespan=lifespan,
                      scopes=Scopes(user=("notes:read",), admin=("notes:admin",)), routes=[
        Route("/notes", add_note, methods=["POST"]),
        Route("/notes", count_notes, methods=["GET"]),
        Route("/api/me", whoami),
    ])


@pytest.fixture
def app_factory():
    return build


@pytest.fixture(scope="session")
def db_metadata():
    return NoteBase.metadata
"""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "own_cluster: the pytester project starts its own PostgreSQL, as a package's suite does"
    )


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """One throwaway cluster for every pytester project of this run, started once.

    Left to itself, each project run with `--db postgres` starts and stops a cluster of its own (initdb
    and pg_ctl: about a CPU second each, some twenty times a run). The kit's own plugin stops this one
    with the run's directory, as it does a package's. Starting a cluster is proven where it is the
    subject (`own_cluster`: tests/test_workers.py).
    """
    from starling_servers import postgres

    return postgres.ensure_cluster(Path(os.environ[options.RUN_DIR_ENV])).url


@pytest.fixture
def shared_postgres(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the next pytester run at the shared cluster, under database names no other test uses
    (the documented `STARLING_TEST_DATABASE_URL`: its database name is the base of the run's names)."""
    url = make_url(postgres_server).set(database=f"kit_{uuid.uuid4().hex[:12]}")
    rendered = url.render_as_string(hide_password=False)
    monkeypatch.setenv(options.DATABASE_URL_ENV, rendered)
    return rendered


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Every behaviour of the kit is proven on both databases."""
    if request.param == "postgres" and request.node.get_closest_marker("own_cluster") is None:
        request.getfixturevalue("shared_postgres")
    return str(request.param)


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A package directory with the kit's plugin (installed, so loaded by its entry point)."""
    pytester.makeini(INI)
    pytester.makeconftest(PROJECT_CONFTEST)
    return pytester


def dedent(source: str) -> str:
    return textwrap.dedent(source).lstrip()
