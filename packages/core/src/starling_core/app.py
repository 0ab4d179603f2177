"""`create_app`: a Starlette app with Starling's standard middleware, errors, health and lifespan.

A service hands in its routes and a lifespan that receives the app's `Database` and yields the
service's typed state (a `TypedDict` of the objects its routes use, built once). Starlette makes that
mapping each request's `request.state`, so a route annotated `request: Request[UsersState]` reads
`request.state["users"]` with its type, and no route looks anything up on `app.state`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette

from starling_core.auth import Scopes
from starling_core.db import Database, is_sqlite

if TYPE_CHECKING:
    from starlette.middleware import Middleware
    from starlette.routing import BaseRoute

    from starling_core.events import Events
    from starling_core.metrics import CallbackGauge, Metrics
    from starling_core.ratelimit import RateLimitBackend
    from starling_core.revocations import Revocations
    from starling_core.settings import ServiceSettings


class ServiceApp(Starlette):
    """The app `create_app` builds: a Starlette app that also says what it was built with."""

    def __init__(
        self,
        *,
        settings: ServiceSettings,
        scopes: Scopes,
        metrics: Metrics,
        revocations: Revocations | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # A path with a slash too many, or one too few, is a 404 like any unknown path. Starlette would
        # redirect it to the other spelling on the host the request named, so a `Host` header chose
        # where the `Location` sent a client, or what a shared cache kept for that path.
        self.router.redirect_slashes = False
        self.settings = settings
        self.scopes = scopes
        self.metrics = metrics
        # what `refuse_revoked_tokens` keeps; a test hands it events through `revocations.consumer(...)`
        self.revocations = revocations


NO_SCOPES = Scopes()
ServiceLifespan = Callable[[Database], AbstractAsyncContextManager[Mapping[str, Any]]]


def create_app(
    settings: ServiceSettings,
    *,
    routes: Sequence[BaseRoute],
    scopes: Scopes = NO_SCOPES,
    lifespan: ServiceLifespan | None = None,
    migrations: Path | None = None,
    database: Database | None = None,
    rate_limited_paths: Sequence[str] = ("/api/",),
    rate_limit_backend: RateLimitBackend | None = None,
    middleware: Sequence[Middleware] = (),
    gauges: Sequence[CallbackGauge] = (),
    events: Events | None = None,
    refuse_revoked_tokens: bool = False,
) -> ServiceApp:
    """Build a service app, checking the `scopes` it declares.

    With no `database`, the app makes one from `settings.database_url`, brings it to the heads of the
    `migrations` folder's history and core's at start-up (unless `settings.auto_migrate` is off) and
    disposes of it at shutdown. A `database` handed
    in belongs to the caller, which manages its schema and its engine: the test kit passes one bound to
    the test's transaction.

    `gauges` are the service's own readings on `/metrics`, taken from its lifespan state at each scrape.

    `events` (`starling_core.events.Events`) runs the outbox relay for as long as the app, and puts the
    outbox and the consumers in `/health`.

    `refuse_revoked_tokens` (needs `events`) consumes the users service's `user.changed` and
    `user.deleted` and refuses a user's tokens issued before them (`starling_core.revocations`): every
    service that accepts the users service's tokens, other than the users service itself, wants it.
    """
    # The app's parts are imported here, when an app is built, not with this module: a service's
    # conftest.py imports its `create_app` at start-up, and a test that builds no app (one on
    # `db_session` alone) paid for the settings' pydantic, the OpenAPI document's, Prometheus, the
    # revocations' events and Alembic: about half a second of every one-test run.
    from starlette.middleware import Middleware

    from starling_core import docs, health, logs
    from starling_core.accesslog import AccessLog, ObservedRequestsMiddleware
    from starling_core.auth import authentication_middleware
    from starling_core.bodylimit import BodySizeLimitMiddleware
    from starling_core.errors import exception_handlers
    from starling_core.metrics import Metrics
    from starling_core.metrics import routes as metrics_routes
    from starling_core.migrations import upgrade
    from starling_core.ratelimit import DatabaseRateLimitBackend, RateLimitMiddleware, parse_rate
    from starling_core.requestid import RequestIDMiddleware
    from starling_core.revocations import Revocations, RevokedTokensMiddleware, consumer_group
    from starling_core.secureheaders import SecurityHeadersMiddleware
    from starling_core.tokens import JWTConfig

    if refuse_revoked_tokens and events is None:
        raise ValueError("refuse_revoked_tokens learns of revocations from events: pass events= too")
    owned = database is None
    database = database or Database.from_url(settings.database_url)
    jwt_config = JWTConfig.from_settings(settings)
    backend = rate_limit_backend or default_rate_limit_backend(settings, database)
    metrics = Metrics(settings.service_name, database, gauges)
    revocations = Revocations(database) if refuse_revoked_tokens else None

    @asynccontextmanager
    async def app_lifespan(app: Starlette) -> AsyncIterator[Mapping[str, Any]]:
        # Under plain `uvicorn app` nothing has configured the root logger yet: the services' own INFO
        # lines would be dropped, and uvicorn's access log would print tokens sent in query strings.
        logs.configure_if_unset()
        try:
            if owned and settings.auto_migrate and migrations is not None:
                await upgrade(database, migrations)
            if owned and isinstance(backend, DatabaseRateLimitBackend):
                await backend.check_table(database)
            async with contextlib.AsyncExitStack() as stack:
                if events is not None:
                    await stack.enter_async_context(events.running(database))
                    if revocations is not None:
                        await revocations.refresh()  # every time recorded so far, before the first request
                        stack.push_async_callback(_cancel, asyncio.create_task(revocations.keep_fresh()))
                        group = consumer_group(settings.service_name)
                        await stack.enter_async_context(events.consuming(revocations.consumer(group)))
                state: Mapping[str, Any] = {}
                if lifespan is not None:
                    state = await stack.enter_async_context(lifespan(database))
                if owned:
                    freeze_heap()
                yield state
        finally:
            if owned:
                await database.dispose()

    # Outermost first. Request ids wrap everything so even a 413 or a 429 carries one, and the access
    # log and the metrics see every answer with its id; the body limit refuses before any work is done;
    # authentication runs before the limiter so a caller is counted by token subject, not by address.
    stack = [
        Middleware(SecurityHeadersMiddleware),
        Middleware(RequestIDMiddleware),
        Middleware(ObservedRequestsMiddleware, observers=[AccessLog(settings.service_name), metrics.observe]),
        Middleware(
            BodySizeLimitMiddleware, max_body_size=settings.max_body_size, body_timeout=settings.body_timeout
        ),
        authentication_middleware(jwt_config),
        # a revoked token leaves its caller anonymous before the limiter counts it
        *([Middleware(RevokedTokensMiddleware, revocations=revocations)] if revocations is not None else []),
        Middleware(
            RateLimitMiddleware,
            rate=parse_rate(settings.rate_limit),
            backend=backend,
            path_prefixes=tuple(rate_limited_paths),
        ),
        *middleware,
    ]
    return ServiceApp(
        settings=settings,
        scopes=scopes,
        metrics=metrics,
        revocations=revocations,
        debug=settings.debug,
        # /openapi.json lists a 429 exactly where the limiter applies
        routes=[
            *health.routes(
                settings,
                database,
                rate_limited_paths=tuple(rate_limited_paths),
                details={"events": lambda: events.health(database)} if events is not None else {},
            ),
            *docs.routes(f"starling-{settings.service_name} API"),
            *metrics_routes(metrics),
            *routes,
        ],
        middleware=stack,
        exception_handlers=exception_handlers(),
        lifespan=app_lifespan,
    )


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def freeze_heap() -> None:
    """Move what start-up allocated out of the garbage collector's sight (`gc.freeze`).

    A service's process holds hundreds of thousands of objects from its imports, models, migrations
    and app that never become garbage; every full collection walked all of them again, and a request
    path allocates enough to set one off every few hundred requests: a fifth to a quarter of a
    service's CPU went there under load (py-spy). Frozen, they are skipped; what requests allocate is
    collected as before. Done by an app that owns its database, that is, the one a server runs.
    """
    gc.collect()
    gc.freeze()


def default_rate_limit_backend(settings: ServiceSettings, database: Database) -> RateLimitBackend:
    """The backend `settings.rate_limit_backend` names; "auto" shares counts only on PostgreSQL.

    SQLite is a single machine's database and usually a single process's; PostgreSQL is what
    replicas share, so that is where one count per caller must live.
    """
    from starling_core.ratelimit import DatabaseRateLimitBackend, MemoryRateLimitBackend

    choice = settings.rate_limit_backend
    if choice == "auto":
        choice = "memory" if is_sqlite(settings.database_url) else "database"
    if choice == "database":
        return DatabaseRateLimitBackend(database)
    return MemoryRateLimitBackend()
