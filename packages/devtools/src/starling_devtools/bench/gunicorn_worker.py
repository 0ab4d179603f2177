"""gunicorn's uvicorn worker with what core's `serve` gives its children: a deadline on each request's
head (`GuardedH11Protocol`) and a cap on the connections one process takes (503 past it).

    gunicorn app:app --workers 2 --worker-class starling_devtools.bench.gunicorn_worker.GuardedUvicornWorker
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    # uvicorn points at the `uvicorn-worker` package, which holds the same class
    warnings.simplefilter("ignore", DeprecationWarning)
    from uvicorn.workers import UvicornWorker

from starling_core.protocol import GuardedH11Protocol
from starling_core.serve import DEFAULT_CONCURRENCY


class GuardedUvicornWorker(UvicornWorker):
    CONFIG_KWARGS: dict[str, Any] = {  # noqa: RUF012 (uvicorn declares it so)
        "loop": "auto",
        "http": GuardedH11Protocol,
        "limit_concurrency": DEFAULT_CONCURRENCY,
    }
