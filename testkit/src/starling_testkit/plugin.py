"""The `starling` pytest plugin: isolated async database tests and ASGI clients for Starling apps.

A package's conftest.py defines `app_factory` and `db_metadata`; everything here builds on those.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

import httpx
import pytest
import pytest_asyncio
import time_machine
from asgi_lifespan import LifespanManager
from pytest_asyncio import is_async_test
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from starlette.applications import Starlette
from starlette.types import ASGIApp

from starling_core import schema as core_schema
from starling_core.app import ServiceApp
from starling_core.db import Database
from starling_core.settings import ServiceSettings
from starling_core.tokens import JWTConfig
from starling_testkit import databases, guards, isolation, postgres, queries
from starling_testkit.binding import AppFactory, BoundDatabase
from starling_testkit.clock import FrozenClock
from starling_testkit.mocks import FakePublisher, fake_stream, mock_of
from starling_testkit.tokens import (
    ADMIN_SUB,
    DEFAULT_SUB,
    TEST_JWT_SECRET,
    TokenFactory,
    make_token_factory,
)

if TYPE_CHECKING:
    # Imported where used: polyfactory (with faker) alone takes ~0.45 s to import, uvicorn ~30 ms,
    # paid by every run and every xdist worker, for the few tests that use them.
    from starling_testkit import factories


BASE_URL = "http://testserver"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("starling", "Starling test kit")
    group.addoption(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="database the suite runs on (default: sqlite)",
    )
    group.addoption(
        "--keep-db",
        action="store_true",
        default=False,
        help="leave the test databases in place after the run, for inspection",
    )


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    # Every plugin is imported by now (SQLAlchemy, pydantic, hypothesis, faker...): a heap of
    # objects that live until the process ends. Freezing them keeps each full garbage collection
    # from walking them all again (~100 ms each, several during collection and the run).
    gc.freeze()
    if not hasattr(config, "workerinput"):
        # The controller makes this run's shared directory; xdist workers inherit it. Never reuse
        # an inherited one: a nested run (pytester) must not share, or stop, its parent's cluster.
        os.environ[databases.RUN_DIR_ENV] = tempfile.mkdtemp(prefix="starling-test-")


_PREPARATION = pytest.StashKey[databases.Preparation]()


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    # The xdist controller runs no tests: its workers prepare their own databases.
    controller = not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"
    if databases.wants_postgres(config) and not config.option.collectonly and not controller:
        config.stash[_PREPARATION] = databases.Preparation(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    preparation = config.stash.get(_PREPARATION, None)
    if preparation is not None:
        preparation.finish()
    if hasattr(config, "workerinput"):
        return
    made = os.environ.pop(databases.RUN_DIR_ENV, None)
    if made is None:
        return
    shared = Path(made)
    keep = bool(config.getoption("--keep-db"))
    stopped = postgres.stop_cluster(shared, keep_data=keep)
    if keep and stopped:
        print(f"\nstarling: PostgreSQL data kept in {shared}")
    else:
        shutil.rmtree(shared, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # The engine lives on the session loop; a test on any other loop would hand asyncpg connections
    # across loops ("attached to a different loop"). So every async test runs on the session loop.
    session_loop = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if is_async_test(item):
            item.add_marker(session_loop, append=False)


# --- what the package provides -------------------------------------------------------------------


@pytest.fixture
def app_factory() -> AppFactory:
    pytest.fail(
        "starling: define an `app_factory` fixture in your conftest.py that returns a callable "
        "(settings, *, database) -> Starlette, e.g. `return create_app`",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    pytest.fail(
        "starling: define a `db_metadata` fixture in your conftest.py that returns the MetaData "
        "of your tables, e.g. `return Base.metadata`",
        pytrace=False,
    )


# --- databases ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _starling_database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> databases.TestDatabase:
    preparation = request.config.stash.get(_PREPARATION, None)
    try:
        if preparation is not None:
            return preparation.database()
        return databases.provider(request.config, tmp_path_factory.getbasetemp())
    except postgres.PostgresUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def db_url(_starling_database: databases.TestDatabase) -> str:
    """This worker's database URL; each xdist worker gets its own database."""
    return _starling_database.url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_engine(
    _starling_database: databases.TestDatabase, db_metadata: MetaData
) -> AsyncIterator[AsyncEngine]:
    """The worker's engine, with the schema (the app's tables and core's) created once for the run."""
    engine = await _starling_database.create(with_core_tables(db_metadata))
    try:
        yield engine
    finally:
        await engine.dispose()
        await _starling_database.destroy()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _starling_worker_connection(
    db_engine: AsyncEngine, _starling_checkouts: guards.CheckoutTracker
) -> AsyncIterator[isolation.WorkerConnection]:
    """The one connection this worker's tests run on, checked out once rather than once a test."""
    worker = isolation.WorkerConnection(db_engine, _starling_checkouts)
    try:
        yield worker
    finally:
        await worker.close()


@pytest_asyncio.fixture(loop_scope="session")
async def db_connection(
    _starling_worker_connection: isolation.WorkerConnection,
) -> AsyncIterator[AsyncConnection]:
    """A connection inside an outer transaction that is rolled back when the test ends."""
    test = await _starling_worker_connection.begin()
    try:
        yield test.connection
    finally:
        await _starling_worker_connection.end(test)


@pytest.fixture
def db_session(
    db_connection: AsyncConnection, _starling_worker_connection: isolation.WorkerConnection
) -> AsyncSession:
    """A session in the test's transaction: its commits are SAVEPOINT releases, undone after the test."""
    # Synchronous on purpose: building a session does no I/O, and db_connection's teardown closes
    # it after the ROLLBACK, when closing costs no round trip (each async fixture costs ~0.2 ms).
    session = AsyncSession(
        bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    _starling_worker_connection.add_session(session)
    return session


# --- the app under test ---------------------------------------------------------------------------


@pytest.fixture
def app_settings(app_factory: AppFactory, db_url: str) -> ServiceSettings:
    """Settings for the app under test, of the class `app_factory` declares for its first argument.

    Rate limits count in memory: a test's counts roll back with it anyway, and on PostgreSQL the
    database backend's upserts of one row inside one transaction slow down as the row's versions
    pile up (each walks them), which a test making hundreds of requests would feel.
    """
    return settings_class(app_factory)(
        env="test",
        database_url=db_url,
        jwt_secret=TEST_JWT_SECRET,
        auto_migrate=False,
        rate_limit_backend="memory",
    )


@pytest.fixture
def app_database(db_connection: AsyncConnection) -> BoundDatabase:
    """The `Database` the app under test is given: its sessions run inside the test's transaction."""
    return BoundDatabase(db_connection)


@pytest.fixture
def app(app_factory: AppFactory, app_settings: ServiceSettings, app_database: BoundDatabase) -> Starlette:
    """The app from `app_factory`, writing through the test's own transaction."""
    return app_factory(app_settings, database=app_database)


@pytest.fixture
def user_scopes(app: Starlette) -> tuple[str, ...]:
    """The scopes `auth_client` and `token_factory()` hold: what a default user holds for the app under
    test (its declared `Scopes.user`). Override it in a conftest.py for an app that declares none."""
    return app.scopes.user if isinstance(app, ServiceApp) else ()


@pytest.fixture
def admin_scopes(app: Starlette) -> tuple[str, ...]:
    """The scopes `admin_client` holds: every scope the app under test declares. Overridable."""
    return app.scopes.all if isinstance(app, ServiceApp) else ()


@pytest_asyncio.fixture(loop_scope="session")
async def started_app(app: Starlette) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan run once for the test, shared by every client fixture."""
    async with LifespanManager(app) as manager:
        yield manager.app


@pytest_asyncio.fixture(loop_scope="session")
async def client(started_app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(started_app) as anonymous:
        yield anonymous


@pytest_asyncio.fixture(loop_scope="session")
async def auth_client(
    started_app: ASGIApp, token_factory: TokenFactory, user_scopes: tuple[str, ...]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests carry a user's token: subject `test-user-001`, the `user_scopes`."""
    async with _client(started_app, token_factory(DEFAULT_SUB, user_scopes)) as authenticated:
        yield authenticated


@pytest_asyncio.fixture(loop_scope="session")
async def admin_client(
    started_app: ASGIApp, token_factory: TokenFactory, admin_scopes: tuple[str, ...]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests carry an administrator's token: subject `test-admin-001`, `admin_scopes`."""
    async with _client(started_app, token_factory(ADMIN_SUB, admin_scopes)) as admin:
        yield admin


@pytest.fixture
def token_factory(app_settings: ServiceSettings, user_scopes: tuple[str, ...]) -> TokenFactory:
    """`token_factory(sub=..., scopes=user_scopes, expires_in=1800, secret=None, **claims) -> str`."""
    return make_token_factory(JWTConfig.from_settings(app_settings), default_scopes=user_scopes)


def _client(app: ASGIApp, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers)


def with_core_tables(metadata: MetaData) -> MetaData:
    """`metadata`'s tables and core's own (`starling_core.schema`), which every service's database has."""
    combined = MetaData(naming_convention=metadata.naming_convention)
    for source in (metadata, core_schema.metadata):
        for table in source.sorted_tables:
            if table.key not in combined.tables:
                table.to_metadata(combined)
    return combined


def settings_class(app_factory: Callable[..., Any]) -> type[ServiceSettings]:
    """The `ServiceSettings` subclass `app_factory` takes, read from its first parameter's annotation
    (through `functools.partial`). A factory whose class cannot be read fails the test, saying how to fix
    it, rather than getting the base class's settings silently."""
    function: Any = app_factory
    while isinstance(function, functools.partial):
        function = function.func
    try:
        parameters = list(inspect.signature(app_factory).parameters.values())
        hints = get_type_hints(function)
    except (TypeError, ValueError, NameError):
        parameters, hints = [], {}
    hint = hints.get(parameters[0].name) if parameters else None
    # `settings: UsersSettings | None = None` is as good as `settings: UsersSettings`.
    for candidate in (hint, *get_args(hint)):
        if isinstance(candidate, type) and issubclass(candidate, ServiceSettings):
            return candidate
    pytest.fail(
        f"starling: cannot tell which settings class {app_factory!r} takes: annotate its first "
        "parameter with a ServiceSettings subclass, or define an `app_settings` fixture",
        pytrace=False,
    )


# --- guards, time, queries, mocks, a real server -----------------------------------------------


@pytest.fixture(scope="session")
def _starling_checkouts(db_engine: AsyncEngine) -> guards.CheckoutTracker:
    return guards.CheckoutTracker(db_engine)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _starling_session_loop() -> asyncio.AbstractEventLoop:
    """The loop every async test and the engine run on (see pytest_collection_modifyitems)."""
    return asyncio.get_running_loop()


@pytest.fixture(autouse=True)
def _starling_leak_guard(
    request: pytest.FixtureRequest, _starling_session_loop: asyncio.AbstractEventLoop
) -> Iterator[None]:
    """Fail a test that leaves a task pending or a connection checked out, naming the leak."""
    # Synchronous: a test that leaks nothing, nearly all of them, costs a set difference instead
    # of two runs of the loop through pytest-asyncio (about 0.2 ms a test).
    loop = _starling_session_loop
    before = asyncio.all_tasks(loop)
    tracker: guards.CheckoutTracker | None = None
    held_before: dict[int, str] = {}
    if "db_engine" in request.fixturenames:
        tracker = request.getfixturevalue("_starling_checkouts")
        held_before = tracker.outstanding()
    yield
    # Autouse fixtures are set up first and torn down last: every other fixture has finished here.
    problems = [f"task left pending: {guards.describe_task(t)}" for t in guards.leaked_tasks(loop, before)]
    if tracker is not None:
        leaked = {key: where for key, where in tracker.outstanding().items() if key not in held_before}
        problems += [f"database connection left checked out, from {where}" for where in leaked.values()]
    if problems:
        pytest.fail("starling: the test leaked\n  " + "\n  ".join(problems), pytrace=False)


@pytest.fixture
def assert_max_queries(db_engine: AsyncEngine) -> queries.MaxQueries:
    """`with assert_max_queries(3): ...` fails, listing the statements, if the block runs more."""
    return lambda limit: queries.max_queries(db_engine, limit)


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    """Wall-clock time frozen at the real now; `.tick(seconds)` and `.move_to(datetime)` move it."""
    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        yield FrozenClock(traveller)


@pytest_asyncio.fixture(loop_scope="session")
async def live_server(
    app_factory: AppFactory, app_settings: ServiceSettings, db_engine: AsyncEngine, db_metadata: MetaData
) -> AsyncIterator[str]:
    """Base URL of the app served by uvicorn on 127.0.0.1, for WebSocket and streaming tests."""
    from starling_testkit import server

    try:
        async with server.serve(app_factory(app_settings, database=Database(db_engine))) as base_url:
            yield base_url
    finally:
        await server.truncate(db_engine, db_metadata)


@pytest.fixture(name="mock_of")
def mock_of_fixture() -> Callable[[type[Any]], Any]:
    return mock_of


@pytest.fixture(name="fake_stream")
def fake_stream_fixture() -> Callable[..., AsyncIterator[Any]]:
    return fake_stream


@pytest.fixture
def fake_publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
def bind_factory(db_session: AsyncSession) -> factories.BindFactory:
    """`bind_factory(MyFactory)`: the polyfactory factory, persisting through `db_session`."""
    from starling_testkit import factories

    return lambda factory: factories.bind(factory, db_session)
