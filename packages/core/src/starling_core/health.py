"""`GET /health` and `GET /openapi.json`, present in every service."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.db import Database
from starling_core.openapi import build_openapi
from starling_core.settings import ServiceSettings


def routes(
    settings: ServiceSettings, database: Database, *, rate_limited_paths: tuple[str, ...]
) -> list[Route]:
    """The two routes of a service built on `database`, documenting the limiter on `rate_limited_paths`."""
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
        return JSONResponse(
            {"status": "healthy", "service": settings.service_name, "checks": {"database": "ok"}}
        )

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
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    ]
