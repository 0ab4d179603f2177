"""`GET /health` (readiness), `GET /livez` (liveness) and `GET /openapi.json`, present in every service.

`/health` answers 503 while the database cannot be reached: take the process out of the load balancer,
it cannot serve. `/livez` answers 200 while the process serves HTTP at all, touching nothing else:
restart the process only when this fails, since a restart cannot bring a database back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.db import Database
from starling_core.openapi import build_openapi
from starling_core.settings import ServiceSettings


def routes(
    settings: ServiceSettings,
    database: Database,
    *,
    rate_limited_paths: tuple[str, ...],
    details: Mapping[str, Callable[[], Awaitable[Any]]] | None = None,
) -> list[Route]:
    """The two routes of a service built on `database`, documenting the limiter on `rate_limited_paths`;
    `details` adds named parts to a healthy answer (e.g. the events' outbox and consumers)."""
    document: dict[str, Any] = {}

    async def health(request: Request) -> JSONResponse:
        try:
            await database.ping()
        except Exception as exc:  # any failure to reach the database is "unhealthy", never a 500
            return JSONResponse(
                {
                    "status": "unhealthy",
                    "service": settings.service_name,
                    "checks": {"database": f"error: {type(exc).__name__}"},
                },
                status_code=503,
            )
        body: dict[str, Any] = {
            "status": "healthy",
            "service": settings.service_name,
            "checks": {"database": "ok"},
        }
        if details:
            body["details"] = {name: await _detail(part) for name, part in details.items()}
        return JSONResponse(body)

    async def livez(request: Request) -> JSONResponse:
        return JSONResponse({"status": "alive", "service": settings.service_name})

    async def openapi(request: Request) -> JSONResponse:
        if not document:
            # Built on first request: the routes do not change after start-up.
            document.update(
                build_openapi(
                    request.app.routes,
                    title=f"starling-{settings.service_name}",
                    rate_limited_paths=rate_limited_paths,
                )
            )
        return JSONResponse(document)

    return [
        Route("/health", health, methods=["GET"], include_in_schema=False),
        Route("/livez", livez, methods=["GET"], include_in_schema=False),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    ]


async def _detail(part: Callable[[], Awaitable[Any]]) -> Any:
    try:
        return await part()
    except Exception as exc:  # a detail that cannot be read is reported, never a 500
        return {"error": type(exc).__name__}
