"""gunicorn's uvicorn worker with what core's `serve` gives its children: a deadline on each request's
head (`GuardedH11Protocol`), a cap on the connections one process takes (503 past it), and the heap
frozen once the app has started (`gc.freeze`).

    gunicorn app:app --workers 2 --worker-class starling_devtools.bench.gunicorn_worker.GuardedUvicornWorker
"""

from __future__ import annotations

import gc
import socket
import sys
import warnings
from typing import Any

import uvicorn
from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]

with warnings.catch_warnings():
    # uvicorn points at the `uvicorn-worker` package, which holds the same class
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker

from starling_core.protocol import GuardedH11Protocol
from starling_core.serve import DEFAULT_CONCURRENCY


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # what `starling_core.serve` does once its child's app has started
            gc.collect()
            gc.freeze()


class GuardedUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 (uvicorn declares it so)
        "loop": "auto",
        "http": GuardedH11Protocol,
        "limit_concurrency": DEFAULT_CONCURRENCY,
    }

    async def _serve(self) -> None:
        # uvicorn's own, with the server above
        self.config.app = self.wsgi
        server = _Server(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
