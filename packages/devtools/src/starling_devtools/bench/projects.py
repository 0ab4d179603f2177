"""The generated pytest projects the bench runs: the same tests on the kit, on the textbook recipe, on
pytest-django (the peer), and none.

Every database test inserts a row and asserts that exactly one row is visible, so a test that sees a
row left by an earlier one fails: the run passing proves each test was rolled back.
"""

from __future__ import annotations

import re
from pathlib import Path

TESTS_PER_MODULE = 50

# The floor: async tests that do nothing, without the kit's plugin.
FLOOR = "floor"
# The kit: `db_session` from the starling plugin, which the pytest11 entry point loads.
KIT = "kit"
# SQLAlchemy's documented recipe written by hand, without the kit's plugin.
TEXTBOOK = "textbook"
KINDS = (FLOOR, KIT, TEXTBOOK)
# pytest-django's `django_db` on a Django model: the peer users know, in an environment of its own
# (`peers.py`); its tests are synchronous, as Django's are.
DJANGO = "pytest-django"

# The bench's stopwatch, in every project's conftest: the seconds from the moment the tests can start
# (collection done; under xdist, the last worker's) to the last test's teardown, which tears down the
# session's fixtures too. It leaves out what no test pays for: interpreter and worker start-up and
# shutdown, imports, collection.
CLOCK_ENV = "BENCH_CLOCK_OUT"
CLOCK = f'''
import json as _bench_json
import os as _bench_os
import time as _bench_time

import pytest as _bench_pytest

_BENCH_CLOCK = {{}}


def pytest_collection_finish(session):
    _BENCH_CLOCK["start"] = _bench_time.perf_counter()


@_bench_pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids):
    _BENCH_CLOCK["start"] = _bench_time.perf_counter()


def pytest_runtest_logreport(report):
    # The last item's teardown also tears down the session's fixtures, in each worker too.
    if report.when == "teardown":
        _BENCH_CLOCK["end"] = _bench_time.perf_counter()


def pytest_sessionfinish(session):
    out = _bench_os.environ.get("{CLOCK_ENV}")
    if out and "start" in _BENCH_CLOCK and not hasattr(session.config, "workerinput"):
        with open(out, "w") as output:
            _bench_json.dump({{"seconds": _BENCH_CLOCK["end"] - _BENCH_CLOCK["start"]}}, output)
'''

PYTEST_INI = """\
[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = session
asyncio_default_test_loop_scope = session
"""
# The kit project is configured as every Starling suite is (the root pyproject's [tool.pytest]): opted in
# to the kit's whole-suite management (session loop, gc.freeze, the leak guard on every test), without
# the faker and time-machine plugins its dependencies bring.
KIT_INI = PYTEST_INI + "starling_suite = true\naddopts = -p no:faker -p no:time_machine\n"

MODEL = """\
from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base


class BenchBase(Base):
    __abstract__ = True


class Row(BenchBase):
    __tablename__ = "rows"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20))
"""

KIT_CONFTEST = (
    MODEL
    + """

import pytest
from starling_core.app import create_app
from starling_core.settings import ServiceSettings


def build(settings: ServiceSettings, *, database=None):
    return create_app(settings, routes=[], database=database)


@pytest.fixture
def app_factory():
    return build


@pytest.fixture(scope="session")
def db_metadata():
    return BenchBase.metadata
"""
)

# The recipe from SQLAlchemy's "Joining a Session into an External Transaction", on the engine Starling
# uses (starling_core.db.create_engine carries the documented SQLite SAVEPOINT workaround). On
# PostgreSQL it uses the server in STARLING_TEST_DATABASE_URL, one database per xdist worker.
TEXTBOOK_CONFTEST = (
    MODEL
    + """

import os

import asyncpg
import pytest_asyncio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from starling_core.db import create_engine


async def _database_url(tmp_path_factory):
    server = os.environ.get("STARLING_TEST_DATABASE_URL")
    if not server:
        return f"sqlite+aiosqlite:///{tmp_path_factory.getbasetemp() / 'textbook.sqlite3'}"
    name = "textbook_" + os.environ.get("PYTEST_XDIST_WORKER", "main")
    maintenance = make_url(server).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(maintenance.render_as_string(hide_password=False))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server).set(database=name)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engine(tmp_path_factory):
    engine = create_engine(await _database_url(tmp_path_factory))
    async with engine.begin() as connection:
        await connection.run_sync(BenchBase.metadata.create_all)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def db_session(engine):
    async with engine.connect() as connection:
        transaction = await connection.begin()
        session = AsyncSession(bind=connection, join_transaction_mode="create_savepoint")
        yield session
        await session.close()
        await transaction.rollback()
"""
)

DB_TEST = """\
async def test_{number}(db_session):
    db_session.add(Row(name="r"))
    await db_session.flush()
    assert await db_session.scalar(select(func.count()).select_from(Row)) == 1
"""

FLOOR_TEST = """\
async def test_{number}():
    pass
"""

DB_IMPORTS = "from sqlalchemy import func, select\n\nfrom conftest import Row\n"


def module_sizes(tests: int, per_module: int = TESTS_PER_MODULE) -> list[int]:
    """How many tests each module holds: full modules of `per_module`, then the remainder."""
    if tests < 1:
        raise ValueError(f"a project needs at least one test, got {tests}")
    full, rest = divmod(tests, per_module)
    return [per_module] * full + ([rest] if rest else [])


def generate(kind: str, directory: Path, tests: int) -> Path:
    """Write a project of `kind` with `tests` tests into `directory` (created); returns it."""
    if kind not in KINDS:
        raise ValueError(f"unknown project kind {kind!r}; expected one of {', '.join(KINDS)}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(KIT_INI if kind == KIT else PYTEST_INI)
    conftest = {FLOOR: "", KIT: KIT_CONFTEST, TEXTBOOK: TEXTBOOK_CONFTEST}[kind]
    (directory / "conftest.py").write_text(conftest + CLOCK)
    template, header = (FLOOR_TEST, "") if kind == FLOOR else (DB_TEST, DB_IMPORTS)
    for index, size in enumerate(module_sizes(tests)):
        body = "\n\n".join(template.format(number=number) for number in range(size))
        (directory / f"test_m{index:03d}.py").write_text(f"{header}\n\n{body}" if header else body)
    return directory


DJANGO_INI = """\
[pytest]
DJANGO_SETTINGS_MODULE = benchsettings
"""

# SQLite in memory (Django's own choice for a test database on SQLite), or the bench's PostgreSQL server
# through psycopg 3, as the anchors measured pytest-django.
DJANGO_SETTINGS = """\
import os
from urllib.parse import urlsplit

SECRET_KEY = "bench"
USE_TZ = True
INSTALLED_APPS = ["benchapp"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
_server = os.environ.get("STARLING_TEST_DATABASE_URL")
if _server:
    _url = urlsplit(_server.replace("+asyncpg", ""))
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql", "NAME": "bench_django", "USER": _url.username or "",
        "PASSWORD": _url.password or "", "HOST": _url.hostname or "", "PORT": str(_url.port or ""),
    }}
else:
    DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "bench.sqlite3"}}
"""

DJANGO_MODEL = """\
from django.db import models


class Row(models.Model):
    name = models.CharField(max_length=20)
"""

DJANGO_TEST = """\
@pytest.mark.django_db
def test_{number}():
    Row.objects.create(name="r")
    assert Row.objects.count() == 1
"""


def generate_django(directory: Path, tests: int) -> Path:
    """The same tests on pytest-django: insert a row, count exactly one, on a Django model."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(DJANGO_INI)
    (directory / "benchsettings.py").write_text(DJANGO_SETTINGS)
    (directory / "benchapp").mkdir(exist_ok=True)
    (directory / "benchapp" / "__init__.py").write_text("")
    (directory / "benchapp" / "models.py").write_text(DJANGO_MODEL)
    (directory / "conftest.py").write_text(CLOCK)
    header = "import pytest\n\nfrom benchapp.models import Row\n"
    for index, size in enumerate(module_sizes(tests)):
        body = "\n\n".join(DJANGO_TEST.format(number=number) for number in range(size))
        (directory / f"test_m{index:03d}.py").write_text(f"{header}\n\n{body}")
    return directory


TEST_FUNCTION = re.compile(r"^async def test_", re.MULTILINE)


def count_tests(directory: Path) -> int:
    """The test functions a generated project holds."""
    return sum(len(TEST_FUNCTION.findall(path.read_text())) for path in directory.glob("test_*.py"))


REQUESTS_CONFTEST = """\
import pytest

from starling_users.app import create_app
from starling_users.models import UsersBase


@pytest.fixture
def app_factory():
    return create_app


@pytest.fixture(scope="session")
def db_metadata():
    return UsersBase.metadata
"""

# One test that times requests alternately, in rounds, through three in-process clients: the kit's
# `auth_client` on the users service's `GET /users/me` (the whole middleware stack), a bare Starlette
# route doing the same read on the same connection, and a bare `/health`. Per-round figures go to the
# JSON file named by BENCH_REQUESTS_OUT.
REQUESTS_TEST = """\
import json
import os
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starling_testkit.tokens import DEFAULT_SUB
from starling_users.models import User

ROUNDS = int(os.environ["BENCH_REQUESTS_ROUNDS"])
BATCH = int(os.environ["BENCH_REQUESTS_BATCH"])


def bare_app(connection):
    async def me(request):
        async with AsyncSession(bind=connection) as session:
            user = await session.get(User, DEFAULT_SUB)
            body = {
                "id": user.id,
                "name": user.name,
                "email": user.email,
                "role": user.role,
                "created_at": user.created_at.isoformat().replace("+00:00", "Z"),
            }
        return JSONResponse(body)

    async def health(request):
        return JSONResponse({"status": "healthy"})

    return Starlette(routes=[Route("/users/me", me), Route("/health", health)])


async def timed(client, path):
    started = time.perf_counter()
    for _ in range(BATCH):
        response = await client.get(path)
        assert response.status_code == 200, response.text
    return (time.perf_counter() - started) / BATCH


async def test_request_costs(auth_client, db_connection, db_session):
    db_session.add(
        User(
            id=DEFAULT_SUB,
            name="Bench",
            email="bench@example.com",
            email_normalized="bench@example.com",
            password_hash="not-a-hash",
            role="user",
            created_at=datetime.now(UTC),
        )
    )
    await db_session.flush()
    transport = httpx.ASGITransport(app=bare_app(db_connection))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as bare:
        cases = {
            "kit_users_me": (auth_client, "/users/me"),
            "bare_read": (bare, "/users/me"),
            "bare_health": (bare, "/health"),
        }
        assert (await auth_client.get("/users/me")).json() == (await bare.get("/users/me")).json()
        for client, path in cases.values():  # warm-up: first-call caches, compiled statements
            await timed(client, path)
        seconds = {name: [] for name in cases}
        for round_number in range(ROUNDS):
            order = list(cases) if round_number % 2 == 0 else list(reversed(cases))
            for name in order:
                seconds[name].append(await timed(*cases[name]))
    with open(os.environ["BENCH_REQUESTS_OUT"], "w") as output:
        json.dump({"batch": BATCH, "seconds": seconds}, output)
"""


def generate_requests(directory: Path) -> Path:
    """The in-process request project: the users service through the kit, and its bare twin."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pytest.ini").write_text(PYTEST_INI)
    (directory / "conftest.py").write_text(REQUESTS_CONFTEST + CLOCK)
    (directory / "test_requests.py").write_text(REQUESTS_TEST)
    return directory
