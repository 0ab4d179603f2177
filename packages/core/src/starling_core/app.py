"""`create_app`: a Starlette app with Starling's standard middleware, errors, health and lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import BaseRoute

from starling_core import health
from starling_core.auth import authentication_middleware
from starling_core.bodylimit import BodySizeLimitMiddleware
from starling_core.db import Database, is_sqlite
from starling_core.errors import exception_handlers
from starling_core.ratelimit import (
    DatabaseRateLimitBackend,
    MemoryRateLimitBackend,
    RateLimitBackend,
    RateLimitMiddleware,
    parse_rate,
)
from starling_core.requestid import RequestIDMiddleware
from starling_core.settings import ServiceSettings
from starling_core.tokens import JWTConfig

ServiceLifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]
Migrate = Callable[[Database], Awaitable[None]]


def create_app(
    settings: ServiceSettings,
    *,
    routes: Sequence[BaseRoute],
    lifespan: ServiceLifespan | None = None,
    migrate: Migrate | None = None,
    rate_limited_paths: Sequence[str] = ("/api/",),
    rate_limit_backend: RateLimitBackend | None = None,
    middleware: Sequence[Middleware] = (),
) -> Starlette:
    """Build a service app.

    The database comes from `settings.database_url` at start-up, unless a `Database` is already on
    `app.state.database` when the lifespan starts: that one (the test kit's, bound to the test's
    transaction) is used as given, neither migrated nor disposed, because its owner manages both.
    """
    jwt_config = JWTConfig.from_settings(settings)

    def current_database() -> Database:
        database: Database = app.state.database
        return database

    backend = rate_limit_backend or default_rate_limit_backend(settings, current_database)

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[None]:
        database: Database | None = getattr(app.state, "database", None)
        if database is None:
            database = Database.from_url(settings.database_url)
            app.state.database = database
        try:
            if not database.externally_managed:
                if migrate is not None and settings.auto_migrate:
                    await migrate(database)
                if isinstance(backend, DatabaseRateLimitBackend):
                    await backend.check_table(database)
            if lifespan is None:
                yield
            else:
                async with lifespan(app):
                    yield
        finally:
            await database.dispose()

    # Outermost first. Request ids wrap everything so even a 413 or a 429 carries one; the body
    # limit refuses before any work is done; authentication runs before the limiter so a caller is
    # counted by token subject rather than by address.
    stack = [
        Middleware(RequestIDMiddleware),
        Middleware(BodySizeLimitMiddleware, max_body_size=settings.max_body_size),
        authentication_middleware(jwt_config),
        Middleware(
            RateLimitMiddleware,
            rate=parse_rate(settings.rate_limit),
            backend=backend,
            path_prefixes=tuple(rate_limited_paths),
        ),
        *middleware,
    ]
    app = Starlette(
        debug=settings.debug,
        routes=[*health.routes, *routes],
        middleware=stack,
        exception_handlers=exception_handlers(),
        lifespan=app_lifespan,
    )
    app.state.settings = settings
    app.state.jwt = jwt_config
    # /openapi.json lists a 429 exactly where the limiter applies
    app.state.rate_limited_paths = tuple(rate_limited_paths)
    return app


def default_rate_limit_backend(
    settings: ServiceSettings, database: Callable[[], Database]
) -> RateLimitBackend:
    """The backend `settings.rate_limit_backend` names; "auto" shares counts only on PostgreSQL.

    SQLite is a single machine's database and usually a single process's; PostgreSQL is what
    replicas share, so that is where one count per caller must live.
    """
    choice = settings.rate_limit_backend
    if choice == "auto":
        choice = "memory" if is_sqlite(settings.database_url) else "database"
    if choice == "database":
        return DatabaseRateLimitBackend(database)
    return MemoryRateLimitBackend()
