"""`GET /metrics`: this process's counters in Prometheus' text format (prometheus-client).

    starling_requests_total{service,method,route,status}       every answered request
    starling_request_duration_seconds{service,method,route}     a histogram of how long they took
    starling_rate_limited_total{service,route}                  requests refused with 429 (the limiter's)
    starling_db_pool_size, _checked_out, _overflow{service}      the database pool, when it is a queue pool
    process_*, python_*                                          the process: CPU, memory, files, GC

`route` is the template (`/items/{item_id}`), so series stay few whatever ids clients send. A service
adds its own readings with `CallbackGauge`s handed to `create_app(gauges=...)`: each reads the app's
lifespan state when `/metrics` is scraped, and may be async (a count in the database).

Each app keeps its own registry, so several apps in one process (a test run) never collide; with
several processes (`serve --processes N`) each keeps its own counts, and a scrape sees the process that
answered it: scrape each process, or sum over them, as with any multi-process server.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.pool import QueuePool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Scope

from starling_core._routing import route_template
from starling_core.db import Database

logger = logging.getLogger("starling.metrics")

# Without this every counter and histogram also exposes a `_created` timestamp series, doubling what
# Prometheus stores for nothing it graphs.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Any other method (a client's invention) is counted as OTHER: one series, not one per spelling.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


@dataclass(frozen=True)
class CallbackGauge:
    """A reading of the service's own, taken at each scrape from the app's lifespan state.

    `CallbackGauge("starling_agents_run_queue", "Background runs waiting for a worker",
    lambda state: state["workers"].queue.qsize())`
    """

    name: str
    documentation: str
    read: Callable[[Mapping[str, Any]], float | Awaitable[float]]


class _Readings(Collector):
    """Gauges whose values are taken just before each scrape: the pool's and the service's own."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.values: dict[str, tuple[str, float]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (documentation, value) in self.values.items():
            family = GaugeMetricFamily(name, documentation, labels=["service"])
            family.add_metric([self.service], value)
            yield family


class Metrics:
    """One app's metrics: what the middleware and the limiter count, and what `/metrics` shows."""

    def __init__(self, service: str, database: Database, gauges: Sequence[CallbackGauge] = ()) -> None:
        self.service = service
        self.database = database
        self.gauges = tuple(gauges)
        self.registry = CollectorRegistry()
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            self.registry.register(collector)
        self.requests = Counter(
            "starling_requests",
            "Requests answered, by route template and status",
            ["service", "method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "starling_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template",
            ["service", "method", "route"],
            registry=self.registry,
        )
        self.refused = Counter(
            "starling_rate_limited",
            "Requests refused with 429 Too Many Requests (the rate limiter's), by route template",
            ["service", "route"],
            registry=self.registry,
        )
        self._readings = _Readings(service)
        self.registry.register(self._readings)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"] if scope["method"] in METHODS else "OTHER"
        route = route_template(scope)
        self.requests.labels(self.service, method, route, str(status)).inc()
        self.duration.labels(self.service, method, route).observe(seconds)
        if status == 429:
            self.refused.labels(self.service, route).inc()

    async def render(self, state: Mapping[str, Any]) -> bytes:
        """The text exposition, with the pool and the service's gauges read now."""
        values = self._pool_readings()
        for gauge in self.gauges:
            try:
                value = gauge.read(state)
                if inspect.isawaitable(value):
                    value = await value
                values[gauge.name] = (gauge.documentation, float(value))
            except Exception as exc:  # one failing reading leaves the others, and the scrape, intact
                logger.warning("gauge %s could not be read: %r", gauge.name, exc)
        self._readings.values = values
        return generate_latest(self.registry)

    def _pool_readings(self) -> dict[str, tuple[str, float]]:
        pool = self.database.engine.pool
        if not isinstance(pool, QueuePool):
            return {}  # SQLite in memory (one static connection), or no pooling at all
        return {
            "starling_db_pool_size": ("Connections the pool keeps", float(pool.size())),
            "starling_db_pool_checked_out": ("Connections in use now", float(pool.checkedout())),
            "starling_db_pool_overflow": (
                "Connections beyond the pool's size (negative: room left before the size)",
                float(pool.overflow()),
            ),
        }


def routes(metrics: Metrics) -> list[Route]:
    async def endpoint(request: Request) -> Response:
        body = await metrics.render(request.scope.get("state", {}))
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/metrics", endpoint, methods=["GET"], include_in_schema=False)]
