"""The `starling` pytest plugin: isolated async database tests and ASGI clients for any Starlette app.

A package's conftest.py defines `db_metadata` and either `app_factory` (an app built by starling_core)
or `app` (any other app, wired to `app_database`); everything here builds on those. Installing the kit
changes nothing else: what it does to every test of a suite (`suite.py`) is for suites that opt in.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args, get_type_hints

import pytest
import pytest_asyncio
from pytest_asyncio import is_async_test

from starling_testkit import options
from starling_testkit.events import kafka_broker, kafka_names, kafka_settings, published_events  # noqa: F401

if TYPE_CHECKING:
    # The rest is imported where used: a run pays for what its tests use, and a suite that does not use
    # the kit pays for nothing but this module (SQLAlchemy, core, time-machine, polyfactory with faker,
    # JWT signing and uvicorn took over a second of every run's and every xdist worker's start-up).
    import httpx
    from sqlalchemy import MetaData
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
    from starlette.applications import Starlette
    from starlette.types import ASGIApp

    from starling_core.settings import ServiceSettings
    from starling_testkit import databases, factories, isolation, queries
    from starling_testkit.binding import AppFactory, BoundDatabase
    from starling_testkit.clock import FrozenClock
    from starling_testkit.mocks import FakePublisher
    from starling_testkit.tokens import TokenFactory


BASE_URL = "http://testserver"


def pytest_addoption(parser: pytest.Parser) -> None:
    options.add_options(parser)


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(parser: pytest.Parser) -> Generator[None]:
    # After the project's own conftest.py files (and plugins) added their options: `--db` and
    # `--keep-db` become the kit's only where they are still free.
    yield
    options.add_short_spellings(parser)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    if options.manages_suite(config):
        from starling_testkit import suite

        config.pluginmanager.register(suite, "starling-suite")
        suite.freeze_heap()
    if not hasattr(config, "workerinput"):
        # The controller makes this run's shared directory; xdist workers inherit it. Never reuse
        # an inherited one: a nested run (pytester) must not share, or stop, its parent's cluster.
        os.environ[options.RUN_DIR_ENV] = tempfile.mkdtemp(prefix="starling-test-")


_PREPARATION = pytest.StashKey["databases.Preparation"]()


def pytest_sessionstart(session: pytest.Session) -> None:
    config = session.config
    # The xdist controller runs no tests: its workers prepare their own databases.
    controller = not hasattr(config, "workerinput") and getattr(config.option, "dist", "no") != "no"
    if options.wants_postgres(config) and not config.option.collectonly and not controller:
        from starling_testkit import databases

        config.stash[_PREPARATION] = databases.Preparation(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    preparation = config.stash.get(_PREPARATION, None)
    if preparation is not None:
        preparation.finish()
    if hasattr(config, "workerinput"):
        return
    made = os.environ.pop(options.RUN_DIR_ENV, None)
    if made is None:
        return
    shared = Path(made)
    keep = options.keep_databases(config)
    stopped = False
    if any(shared.iterdir()):  # empty, it holds no cluster: a SQLite run never imports the starter
        from starling_servers import postgres

        stopped = postgres.stop_cluster(shared, keep_data=keep)
    if keep and stopped:
        print(f"\nstarling: PostgreSQL data kept in {shared}")
    else:
        shutil.rmtree(shared, ignore_errors=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # The engine lives on the session loop; a test on any other loop would hand asyncpg connections
    # across loops ("attached to a different loop"). So an async test that uses the kit's database
    # runs on the session loop; in a suite that opted in, every async test does (see `suite`).
    session_loop = pytest.mark.asyncio(loop_scope="session")
    every = options.manages_suite(config)
    for item in items:
        if is_async_test(item) and (every or "db_engine" in getattr(item, "fixturenames", ())):
            item.add_marker(session_loop, append=False)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # The documented way for a fixture to learn its test's outcome (see `_starling_unbound_writes`).
    report = yield
    reports: dict[str, pytest.TestReport] = item.stash.setdefault(_REPORTS, {})
    reports[report.when] = report
    return report


_REPORTS = pytest.StashKey[dict[str, pytest.TestReport]]()


# --- what the package provides -------------------------------------------------------------------


@pytest.fixture
def app_factory() -> AppFactory:
    """Yours to define: the app's `create_app`, called as `(settings, *, database)` (starling_core apps)."""
    pytest.fail(
        "starling: define an `app_factory` fixture in your conftest.py that returns a callable "
        "(settings, *, database) -> Starlette, e.g. `return create_app`; for an app not built by "
        "starling_core, define an `app` fixture that wires it to `app_database` instead",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def db_metadata() -> MetaData:
    """Yours to define: the `MetaData` of the tables the tests need, e.g. `Base.metadata`."""
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
    from starling_testkit import databases

    if not options.wants_postgres(request.config):  # a file: no server to start, or fail to
        return databases.provider(request.config, tmp_path_factory.getbasetemp())
    from starling_servers import postgres

    preparation = request.config.stash.get(_PREPARATION, None)
    try:
        if preparation is not None:
            return preparation.database()
        return databases.provider(request.config, tmp_path_factory.getbasetemp())
    except postgres.PostgresUnavailable as exc:
        pytest.fail(f"{exc} (or point {options.DATABASE_URL_ENV} at a server)", pytrace=False)


@pytest.fixture(scope="session")
def db_url(_starling_database: databases.TestDatabase) -> str:
    """This worker's database URL; each xdist worker gets its own database."""
    return _starling_database.url


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db_engine(
    _starling_database: databases.TestDatabase, db_metadata: MetaData
) -> AsyncIterator[AsyncEngine]:
    """The worker's engine, with the schema (your tables and core's) created once for the run."""
    engine = await _starling_database.create(with_core_tables(db_metadata))
    try:
        yield engine
    finally:
        await engine.dispose()
        await _starling_database.destroy()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def _starling_session_loop() -> asyncio.AbstractEventLoop:
    """The loop the engine and every test that uses it run on (see pytest_collection_modifyitems)."""
    return asyncio.get_running_loop()


@pytest.fixture(scope="session")
def _starling_isolation(request: pytest.FixtureRequest, db_engine: AsyncEngine) -> isolation.Isolation:
    from starling_testkit import isolation

    # The leak guard's tracker, in a suite that opted in: the kit's own checkouts are not leaks.
    suite = options.manages_suite(request.config)
    tracker = request.getfixturevalue("_starling_checkouts") if suite else None
    return isolation.Isolation(db_engine, tracker)


@pytest.fixture
def db_connection(
    _starling_isolation: isolation.Isolation, _starling_session_loop: asyncio.AbstractEventLoop
) -> Iterator[AsyncConnection]:
    """A connection inside the test's transaction, which is rolled back when the test ends."""
    # Synchronous, driving the session loop itself between tests: an async fixture costs two more
    # runs of the loop through pytest-asyncio (~0.15 ms a test, measured), for the same BEGIN and ROLLBACK.
    loop = _starling_session_loop
    test = loop.run_until_complete(_starling_isolation.begin())
    try:
        yield test.connection
    finally:
        loop.run_until_complete(_starling_isolation.end(test))


@pytest.fixture
def db_session(db_connection: AsyncConnection, _starling_isolation: isolation.Isolation) -> AsyncSession:
    """An `AsyncSession` in the test's transaction: its commits are SAVEPOINT releases, undone after."""
    # Building a session does no I/O, and db_connection's teardown closes it after the ROLLBACK,
    # when closing costs no round trip.
    from sqlalchemy.ext.asyncio import AsyncSession

    session = AsyncSession(
        bind=db_connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    _starling_isolation.add_session(session)
    return session


# --- the app under test ---------------------------------------------------------------------------


@pytest.fixture
def app_settings(app_factory: AppFactory, db_url: str) -> ServiceSettings:
    """Settings of the class `app_factory` takes: this worker's database, the kit's JWT key, no migration."""
    # Rate limits count in memory: a test's counts roll back with it anyway, and on PostgreSQL the
    # database backend's upserts of one row inside one transaction slow down as the row's versions
    # pile up (each walks them), which a test making hundreds of requests would feel.
    from starling_testkit.tokens import TEST_JWT_SECRET

    return settings_class(app_factory)(
        env="test",
        database_url=db_url,
        jwt_secret=TEST_JWT_SECRET,
        auto_migrate=False,
        rate_limit_backend="memory",
    )


@pytest.fixture
def app_database(db_connection: AsyncConnection) -> BoundDatabase:
    """The seam: the `BoundDatabase` the app must use; its sessions are in the test's transaction."""
    from starling_testkit.binding import BoundDatabase

    return BoundDatabase(db_connection)


@pytest.fixture
def app(
    app_factory: AppFactory,
    app_settings: ServiceSettings,
    app_database: BoundDatabase,
    _starling_unbound_writes: None,
) -> Starlette:
    """The app under test: `app_factory(app_settings, database=app_database)`; override it for other apps."""
    return app_factory(app_settings, database=app_database)


@pytest.fixture
def _starling_unbound_writes(request: pytest.FixtureRequest, db_engine: AsyncEngine) -> Iterator[None]:
    """While the test drives the app, a COMMIT on any engine but the kit's fails it (see guards)."""
    from starling_testkit import guards

    guards.UNBOUND_WRITES.watch(db_engine)
    try:
        yield
    finally:
        refused = guards.UNBOUND_WRITES.stop()
    call = request.node.stash.get(_REPORTS, {}).get("call")
    if refused and (call is None or call.passed):  # the app swallowed the refusal: say it here
        pytest.fail(refused[0], pytrace=False)


@pytest.fixture
def user_scopes(app: Starlette) -> tuple[str, ...]:
    """The scopes `auth_client` and `token_factory()` hold: the app's `Scopes.user`; overridable."""
    from starling_core.app import ServiceApp

    return app.scopes.user if isinstance(app, ServiceApp) else ()


@pytest.fixture
def admin_scopes(app: Starlette) -> tuple[str, ...]:
    """The scopes `admin_client` holds: every scope the app under test declares; overridable."""
    from starling_core.app import ServiceApp

    return app.scopes.all if isinstance(app, ServiceApp) else ()


@pytest_asyncio.fixture(loop_scope="session")
async def started_app(app: Starlette, _starling_unbound_writes: None) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan run once for the test, shared by every client fixture."""
    from asgi_lifespan import LifespanManager

    async with LifespanManager(app) as manager:
        yield manager.app


@pytest_asyncio.fixture(loop_scope="session")
async def client(started_app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    """An `httpx.AsyncClient` on the app, in process, base URL `http://testserver`, no token."""
    async with _client(started_app) as anonymous:
        yield anonymous


@pytest_asyncio.fixture(loop_scope="session")
async def auth_client(
    started_app: ASGIApp, token_factory: TokenFactory, user_scopes: tuple[str, ...]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests carry a user's token: subject `test-user-001`, the `user_scopes`."""
    from starling_testkit.tokens import DEFAULT_SUB

    async with _client(started_app, token_factory(DEFAULT_SUB, user_scopes)) as authenticated:
        yield authenticated


@pytest_asyncio.fixture(loop_scope="session")
async def admin_client(
    started_app: ASGIApp, token_factory: TokenFactory, admin_scopes: tuple[str, ...]
) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose requests carry an administrator's token: subject `test-admin-001`, `admin_scopes`."""
    from starling_testkit.tokens import ADMIN_SUB

    async with _client(started_app, token_factory(ADMIN_SUB, admin_scopes)) as admin:
        yield admin


@pytest.fixture
def token_factory(app_settings: ServiceSettings, user_scopes: tuple[str, ...]) -> TokenFactory:
    """`token_factory(sub=..., scopes=user_scopes, expires_in=1800, secret=None, **claims) -> str`."""
    from starling_core.tokens import JWTConfig
    from starling_testkit.tokens import make_token_factory

    return make_token_factory(JWTConfig.from_settings(app_settings), default_scopes=user_scopes)


def _client(app: ASGIApp, token: str | None = None) -> httpx.AsyncClient:
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL, headers=headers)


def with_core_tables(metadata: MetaData) -> MetaData:
    """`metadata`'s tables and core's own (`starling_core.schema`), which every service's database has."""
    from sqlalchemy import MetaData

    from starling_core import schema as core_schema

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
    from starling_core.settings import ServiceSettings

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


# --- time, queries, mocks, factories, a real server -----------------------------------------------


@pytest.fixture
def assert_max_queries(db_engine: AsyncEngine) -> queries.MaxQueries:
    """`with assert_max_queries(3): ...` fails, listing the statements, if the block runs more."""
    from starling_testkit import queries

    return lambda limit: queries.max_queries(db_engine, limit)


@pytest.fixture
def frozen_clock() -> Iterator[FrozenClock]:
    """Wall-clock time frozen at the real now; `.tick(seconds)` and `.move_to(datetime)` move it."""
    import time_machine

    from starling_testkit.clock import FrozenClock

    with time_machine.travel(datetime.now(UTC), tick=False) as traveller:
        yield FrozenClock(traveller)


@pytest_asyncio.fixture(loop_scope="session")
async def live_server(
    app_factory: AppFactory, app_settings: ServiceSettings, db_engine: AsyncEngine, db_metadata: MetaData
) -> AsyncIterator[str]:
    """Base URL of the app served by uvicorn on 127.0.0.1 (real writes, tables emptied afterwards)."""
    from starling_core.db import Database
    from starling_testkit import server

    try:
        async with server.serve(app_factory(app_settings, database=Database(db_engine))) as base_url:
            yield base_url
    finally:
        await server.truncate(db_engine, db_metadata)


@pytest.fixture(name="mock_of")
def mock_of_fixture() -> Callable[[type[Any]], Any]:
    """`mock_of(SomeClass)`: an autospecced mock; a method it lacks or a wrong signature fails."""
    from starling_testkit.mocks import mock_of

    return mock_of


@pytest.fixture(name="fake_stream")
def fake_stream_fixture() -> Callable[..., AsyncIterator[Any]]:
    """`fake_stream(items, fail_after=None, error=None)`: an async iterator that can fail half-way."""
    from starling_testkit.mocks import fake_stream

    return fake_stream


@pytest.fixture
def fake_publisher() -> FakePublisher:
    """A `FakePublisher`: records `publish(...)` calls; `.fail_on(n)` makes the n-th call raise."""
    from starling_testkit.mocks import FakePublisher

    return FakePublisher()


@pytest.fixture
def bind_factory(db_session: AsyncSession) -> factories.BindFactory:
    """`bind_factory(MyFactory)`: the polyfactory factory, saving into `db_session`, filling real models."""
    from starling_testkit import factories

    return lambda factory: factories.bind(factory, db_session)
