"""Where a request's time goes: each service's read path under wrk, sampled by py-spy, cut by layer.

`starling_core.serve --processes 1` serves the read path (as in `serving`) while wrk loads it; py-spy
samples its process for `--profile-seconds` (200 samples a second, no pause of the target) and writes
collapsed stacks. Each sample of the event loop's thread is charged to the innermost frame that belongs to a
layer (`LAYERS`, matched on the frame's file): a sample in `jwt.decode` is authentication, one in
uvicorn's `send` under the rate limiter's `send_with_headers` is the server. Samples of other threads
(aiosqlite runs each SQLite call on a thread of its own) are reported as the driver's thread. asyncpg's
protocol is compiled, so on PostgreSQL its reads show as asyncio's socket I/O, charged to the server.

A layer's cost per request is its share of the loop's samples times the loop's CPU per request, as
psutil measured it over the same seconds; the bare app (`bare.py`) is measured the same way beside it.
Rerun it with `nox -s bench -- --only profile`; the collapsed stacks are kept in `.bench/` and open in
any flame graph viewer (speedscope, flamegraph.pl).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from starling_devtools.bench import servers, serving, wrk
from starling_devtools.bench.results import Figure
from starling_devtools.harness import processes as services

PART = "profile"
RATE = 200
PORT = 19141
DRIVER_THREAD = "driver thread (aiosqlite)"
OTHER = "other (event loop, asyncio)"

# Innermost match wins; a frame is "function (path:line)" and is matched on its path.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # asyncpg's protocol is compiled: py-spy sees its reads as asyncio's, so they land here on PostgreSQL
    ("server and socket I/O (uvicorn, h11, asyncio)", ("uvicorn/", "h11/", "starling_core/protocol.py",
                                                      "asyncio/selector_events.py", "asyncio/streams.py")),
    ("auth (JWT)", ("starlette/middleware/authentication.py", "starling_core/auth.py",
                    "starling_core/tokens.py", "jwt/", "cryptography/", "hmac.py")),
    ("rate limit", ("starling_core/ratelimit.py",)),
    ("request id", ("starling_core/requestid.py", "uuid.py")),
    ("security headers", ("starling_core/secureheaders.py",)),
    ("body limit", ("starling_core/bodylimit.py",)),
    ("access log", ("starling_core/accesslog.py", "starling_core/logs.py", "logging/")),
    ("metrics", ("starling_core/metrics.py", "prometheus_client/")),
    ("validation (operation)", ("starling_core/operations.py", "starling_core/validation.py")),
    ("serialisation (pydantic, JSON)", ("pydantic/", "pydantic_core/", "starlette/responses.py", "json/")),
    ("session (checkout, begin, close)", ("sqlalchemy/ext/asyncio/session.py", "sqlalchemy/orm/session.py",
                                          "sqlalchemy/pool/", "sqlalchemy/ext/asyncio/engine.py",
                                          "starling_core/db.py", "sqlalchemy/orm/state_changes.py")),
    ("query (SQLAlchemy, driver)", ("sqlalchemy/", "aiosqlite/", "asyncpg/", "greenlet/")),
    ("service code (routes, service, repository)", ("starling_users/", "starling_agents/",
                                                    "starling_reporting/", "starling_core/repository.py")),
    ("routing, errors, middleware plumbing", ("starlette/", "starling_core/_routing.py",
                                              "starling_core/errors.py", "starling_core/app.py")),
    ("bare app", ("starling_devtools/bench/bare.py",)),
)  # fmt: skip


def frame_file(frame: str) -> str:
    """The path inside "function (path:line)"; '' for a frame without one."""
    start = frame.rfind(" (")
    return frame[start + 2 : -1] if start >= 0 and frame.endswith(")") else ""


def layer_of(stack: Sequence[str]) -> str:
    """The layer a sampled stack (outermost frame first) is charged to."""
    stack = [frame for frame in stack if not frame.startswith("process ")]  # --subprocesses' frames
    if any("threading.py" in frame_file(frame) for frame in stack[:3]):
        return DRIVER_THREAD
    for frame in reversed(stack):
        path = frame_file(frame)
        for layer, markers in LAYERS:
            if any(marker in path for marker in markers):
                return layer
    return OTHER


def classify(collapsed: str) -> Counter[str]:
    """Samples per layer from py-spy's raw (collapsed) output: `frame;frame;... count` per line."""
    samples: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples[layer_of(stack.split(";"))] += int(count)
    return samples


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: it is in starling-devtools' bench dependency group")
    return found


@dataclass(frozen=True)
class Profiled(serving.Run):
    """One app's samples by layer, beside the rate and CPU they were taken at: enough for a cost each."""

    app: str  # "service" or "bare"
    samples: Mapping[str, int]
    requests_per_second: float
    cpu_ms: float  # the process's CPU per request over the profiled seconds
    collapsed: str  # where the stacks were kept

    def cost_ms(self, layer: str) -> float:
        """The layer's CPU per request: its share of all samples times the process's CPU per request."""
        total = sum(self.samples.values())
        return self.cpu_ms * self.samples.get(layer, 0) / total if total else 0.0


def _profile_one(
    started: services.Running, path: str, headers: Mapping[str, str], *, seconds: float, out: Path
) -> tuple[Counter[str], float, float]:
    with httpx.Client(timeout=30.0) as client:
        for _ in range(serving.WARM_UP_REQUESTS):
            client.get(f"{started.url}{path}", headers=headers).raise_for_status()
    loaded: dict[str, wrk.WrkResult] = {}
    load = threading.Thread(
        target=lambda: loaded.update(
            result=wrk.run(f"{started.url}{path}", duration=seconds + 3, headers=headers)
        )
    )
    load.start()
    time.sleep(1.0)  # wrk's connections are up and the server is busy
    cpu_before = serving.cpu_seconds(started.pid)
    subprocess.run(
        [py_spy(), "record", "--pid", str(started.pid), "--rate", str(RATE), "--duration", f"{seconds:g}",
         "--format", "raw", "--output", str(out), "--nonblocking", "--subprocesses"],
        check=True, capture_output=True, timeout=seconds + 60,
    )  # fmt: skip
    cpu = serving.cpu_seconds(started.pid) - cpu_before
    load.join()
    result = loaded["result"]
    served = result.requests_per_second * seconds
    return classify(out.read_text()), result.requests_per_second, 1000 * cpu / max(1.0, served)


def measure(
    database: str,
    env_for: Callable[[str], Mapping[str, str]],
    *,
    seconds: float,
    out_dir: Path,
    workloads: Sequence[serving.Workload] = serving.WORKLOADS,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Profiled]:
    wrk.executable()
    py_spy()
    out_dir.mkdir(parents=True, exist_ok=True)
    found: list[Profiled] = []
    for workload in workloads:
        served = serving.ready(database, workload, PORT, env_for, out_dir)
        for app, key in (("service", servers.ONE.key), ("bare", serving.BARE)):
            out = out_dir / f"profile-{workload.service}-{database}-{app}.collapsed"
            started = served.start(key, out_dir)
            try:
                samples, rate, cpu = _profile_one(
                    started, served.read_path(key), served.prepared.headers, seconds=seconds, out=out
                )
            finally:
                serving.stop(started)
            found.append(Profiled(database, workload.service, app, samples, rate, cpu, str(out)))
        for item in found[-2:]:
            log(f"profile {database} {workload.service} {item.app}: {item.requests_per_second:,.0f} req/s, "
                f"CPU {item.cpu_ms:.2f} ms/req, {sum(item.samples.values())} samples")  # fmt: skip
    return found


def figures(profiled: Sequence[Profiled]) -> list[Figure]:
    found: list[Figure] = []
    by_key = {(item.database, item.service, item.app): item for item in profiled}
    layers = [layer for layer, _ in LAYERS] + [OTHER, DRIVER_THREAD]
    for (database, service, app), item in by_key.items():
        if app != "service":
            continue
        reference = by_key.get((database, service, "bare"))
        where = serving.DATABASE_LABELS.get(database, database)
        found.append(
            Figure(
                PART,
                f"{service} GET {_read_path(service)}, {where}: CPU per request, whole process",
                item.cpu_ms,
                "ms",
                reference="bare Starlette app, same read" if reference else "",
                reference_value=reference.cpu_ms if reference else None,
                detail=f"{item.requests_per_second:,.0f} req/s under wrk; stacks in {item.collapsed}",
            )
        )
        total = sum(item.samples.values())
        for layer in layers:
            count = item.samples.get(layer, 0)
            if not count:
                continue
            bare_cost = reference.cost_ms(layer) if reference else None
            found.append(
                Figure(
                    PART,
                    f"{service}, {where}: {layer}",
                    item.cost_ms(layer),
                    "ms",
                    reference="bare app, same layer" if bare_cost else "",
                    reference_value=bare_cost or None,
                    detail=f"{100 * count / total:.1f}% of samples",
                )
            )
    return found


def _read_path(service: str) -> str:
    return next((w.read for w in serving.WORKLOADS if w.service == service), "?")


def measurements(profiled: Sequence[Profiled]) -> list[dict[str, Any]]:
    return [
        {
            "database": item.database,
            "service": item.service,
            "app": item.app,
            "samples": dict(item.samples),
            "requests_per_second": item.requests_per_second,
            "cpu_ms_per_request": item.cpu_ms,
            "collapsed": item.collapsed,
        }
        for item in profiled
    ]
