"""The ways `serving` serves an app: one uvicorn process, and several processes by four servers.

Each builds a command line for an ASGI app given as `module:attribute` (`factory`: a function that
builds it) and says how many processes must accept before a run starts. The servers' own access logs
are off; core's access log (`starling.access`, one line per request) stays on in every one of them, as
in production: gunicorn and granian have no switch for it, so `serve` is not given `--no-access-log`
either. The bare apps log nothing: the line is part of what the stack costs.

- `serve-1`: `python -m starling_core.serve --processes 1`, the project's server with one process
  (uvicorn and core's guarded protocol): the reference of every two-process figure, and the server of
  every bare reference;
- `uvicorn-1`: plain `uvicorn`, one process;
- `uvicorn-workers-2`: stock `uvicorn --workers 2`, whose shared socket loses TCP_NODELAY (uvicorn
  issue 3149): the reference for what `serve` fixes;
- `serve-2`: `python -m starling_core.serve --processes 2`, one `SO_REUSEPORT` socket per process;
- `gunicorn-2`: gunicorn's arbiter with two uvicorn workers (`uvicorn.workers.UvicornWorker` with
  what `serve` gives its children: `gunicorn_worker.GuardedUvicornWorker`);
- `granian-2`: granian (a Rust server, its own HTTP/1.1 implementation and worker supervision) with two
  workers, its header read timeout and back-pressure set to what core's protocol and cap do.

The multi-process servers count rate limits in the database, as `serve` makes its children do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

HEADER_TIMEOUT_MS = 10_000  # core's STARLING_HEADER_TIMEOUT default
CONCURRENCY = 1000  # core's --limit-concurrency default
WORKER_CLASS = "starling_devtools.bench.gunicorn_worker.GuardedUvicornWorker"
SHARED_COUNT = {"STARLING_RATE_LIMIT_BACKEND": "database"}


@dataclass(frozen=True)
class Target:
    app: str  # module:attribute
    host: str
    port: int
    factory: bool = False


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    processes: int
    argv: Callable[[Target], list[str]]
    env: dict[str, str]


def _command(module: str, *args: str, flag: bool = True) -> Callable[[Target], list[str]]:
    """`python -m module args...`, `{app}`, `{host}` and `{port}` standing for the target's. A factory
    is named with `--factory` (`flag`), or else called in the app's name (`module:build()`)."""

    def argv(target: Target) -> list[str]:
        app = f"{target.app}()" if target.factory and not flag else target.app
        filled = [arg.format(app=app, host=target.host, port=target.port) for arg in args]
        return [sys.executable, "-m", module, *filled, *(["--factory"] if target.factory and flag else [])]

    return argv


def uvicorn(workers: int) -> Callable[[Target], list[str]]:
    extra = ["--workers", str(workers)] if workers > 1 else []
    return _command("uvicorn", "{app}", "--host", "{host}", "--port", "{port}", "--no-access-log", *extra)


def serve(processes: int) -> Callable[[Target], list[str]]:
    where = ("{app}", "--host", "{host}", "--port", "{port}")
    return _command("starling_core.serve", *where, "--processes", str(processes))


def gunicorn(workers: int) -> Callable[[Target], list[str]]:
    return _command(
        "gunicorn", "{app}", "--bind", "{host}:{port}", "--workers", str(workers),
        "--worker-class", WORKER_CLASS, "--graceful-timeout", "10", flag=False,
    )  # fmt: skip


def granian(workers: int) -> Callable[[Target], list[str]]:
    return _command(
        "granian", "{app}", "--interface", "asgi", "--host", "{host}", "--port", "{port}",
        "--workers", str(workers), "--http", "1", "--no-access-log",
        "--http1-header-read-timeout", str(HEADER_TIMEOUT_MS), "--backpressure", str(CONCURRENCY),
        "--respawn-failed-workers", "--log-level", "warning",
    )  # fmt: skip


ONE = Server("serve-1", "starling_core.serve, 1 process", 1, serve(1), {})
UVICORN = Server("uvicorn-1", "uvicorn, 1 process", 1, uvicorn(1), {})
STOCK = Server("uvicorn-workers-2", "uvicorn --workers 2 (stock)", 2, uvicorn(2), SHARED_COUNT)
SERVE = Server("serve-2", "starling_core.serve, 2 processes", 2, serve(2), {})
GUNICORN = Server("gunicorn-2", "gunicorn + 2 uvicorn workers", 2, gunicorn(2), SHARED_COUNT)
GRANIAN = Server("granian-2", "granian, 2 workers", 2, granian(2), SHARED_COUNT)
ALL = {server.key: server for server in (ONE, UVICORN, STOCK, SERVE, GUNICORN, GRANIAN)}
