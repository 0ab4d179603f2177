"""`GET /health` and `GET /openapi.json`, present in every service."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.openapi import build_openapi


async def health(request: Request) -> JSONResponse:
    settings = request.app.state.settings
    try:
        await request.app.state.database.ping()
    except Exception as exc:  # any failure to reach the database is "unhealthy", never a 500
        return JSONResponse(
            {
                "status": "unhealthy",
                "service": settings.service_name,
                "checks": {"database": f"error: {type(exc).__name__}"},
            },
            status_code=503,
        )
    return JSONResponse({"status": "healthy", "service": settings.service_name, "checks": {"database": "ok"}})


async def openapi(request: Request) -> JSONResponse:
    state = request.app.state
    document = getattr(state, "openapi_document", None)
    if document is None:
        # Built on first request: the routes do not change after start-up.
        document = build_openapi(
            request.app.routes,
            title=f"starling-{state.settings.service_name}",
            rate_limited_paths=getattr(state, "rate_limited_paths", ()),
        )
        state.openapi_document = document
    return JSONResponse(document)


routes = [
    Route("/health", health, methods=["GET"], include_in_schema=False),
    Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
]
