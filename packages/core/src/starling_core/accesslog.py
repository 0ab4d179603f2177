"""One log line per request, on `starling.access`: method, route template, status, duration, client.

The line names the route's template (`/users/{user_id}`), never the raw path with its query string, so
a token sent as `?token=` never reaches it; the request id comes with every record (see `logs.py`).
Successful probes (`/health`, `/livez`, `/metrics`) are logged at DEBUG: a load balancer asks every few
seconds, and those lines would bury the others.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starling_core._routing import route_template
from starling_core.logs import ACCESS_LOGGER

logger = logging.getLogger(ACCESS_LOGGER)

PROBES = frozenset({"/health", "/livez", "/metrics"})


Observer = Callable[[Scope, int, float], None]


class ObservedRequestsMiddleware:
    """Times every HTTP request once and hands `(scope, status, seconds)` to each observer: the access log
    and the metrics see the same answer and the same duration, measured by one wrapper on the hot path."""

    def __init__(self, app: ASGIApp, *, observers: Sequence[Observer]) -> None:
        self.app = app
        self.observers = tuple(observers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        started = time.perf_counter()
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # An exception before any answer is the 500 that Starlette's outermost middleware sends.
            seconds = time.perf_counter() - started
            for observe in self.observers:
                observe(scope, status or 500, seconds)


class AccessLog:
    """The access line of a request, an observer of `ObservedRequestsMiddleware`."""

    def __init__(self, service: str = "") -> None:
        self.service = service

    def __call__(self, scope: Scope, status: int, seconds: float) -> None:
        self.log(scope, status, seconds * 1000)

    def log(self, scope: Scope, status: int, duration_ms: float) -> None:
        route = route_template(scope)
        level = logging.DEBUG if route in PROBES and status < 400 else logging.INFO
        if not logger.isEnabledFor(level):
            return
        client = scope.get("client")
        host = client[0] if client else "-"
        method = scope["method"]
        logger.log(
            level,
            "%s %s %d %.1f ms %s",
            method,
            route,
            status,
            duration_ms,
            host,
            extra={
                "service": self.service,
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(duration_ms, 2),
                "client": host,
            },
        )
