"""Where a request's time goes: each service's read path under wrk, sampled by py-spy, cut by layer.

`starling_core.serve --processes 1` serves the read path (as in `serving`) while wrk loads it; py-spy
samples its process for `--profile-seconds` (200 samples a second, no pause of the target) and writes
collapsed stacks. Each sample of the event loop's thread is charged to the innermost frame that belongs to a
layer (`LAYERS`, matched on the frame's file): a sample in `jwt.decode` is authentication, one in
uvicorn's `send` under the rate limiter's `send_with_headers` is the server. Samples of other threads
(aiosqlite runs each SQLite call on a thread of its own) are reported as the driver's thread. asyncpg's
protocol is compiled, so on PostgreSQL its reads show as asyncio's socket I/O, charged to the server.

A layer's cost per request is its share of the loop's samples times the process's CPU per request, as
psutil measured it over the run; the bare app (`bare.py`) is measured the same way beside it.
Rerun it with `nox -s bench -- --only profile`; the collapsed stacks are kept in `.bench/` and open in
any flame graph viewer (speedscope, flamegraph.pl).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starling_devtools.bench import serving, wrk
from starling_devtools.bench.results import LABELS, Figure, Unavailable
from starling_devtools.harness import processes

PART = "profile"
RATE = 200
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
    paths = [frame_file(frame) for frame in stack if not frame.startswith("process ")]  # --subprocesses'
    if any("threading.py" in path for path in paths[:3]):
        return DRIVER_THREAD
    for path in reversed(paths):
        for layer, markers in LAYERS:
            if any(marker in path for marker in markers):
                return layer
    return OTHER


def classify(collapsed: str) -> dict[str, int]:
    """Samples per layer from py-spy's raw (collapsed) output: `frame;frame;... count` per line."""
    samples: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples[layer_of(stack.split(";"))] += int(count)
    return dict(samples)  # a plain dict: dataclasses.asdict would rebuild a Counter from its items


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise Unavailable("py-spy is not installed: it is in starling-devtools' bench dependency group")
    return found


@dataclass(frozen=True)
class Profiled:
    """One app's samples by layer, beside the rate and CPU they were taken at: enough for a cost each."""

    database: str
    service: str
    app: str  # "service" or "bare"
    samples: Mapping[str, int]
    requests_per_second: float
    cpu_ms: float  # the process's CPU per request over the profiled seconds
    collapsed: str  # where the stacks were kept

    def cost_ms(self, layer: str) -> float:
        """The layer's CPU per request: its share of all samples times the process's CPU per request."""
        total = sum(self.samples.values())
        return self.cpu_ms * self.samples.get(layer, 0) / total if total else 0.0


def measure(
    database: str,
    env_for: serving.EnvFor,
    *,
    seconds: float,
    out_dir: Path,
    workloads: Sequence[serving.Workload] = serving.WORKLOADS,
    log: Callable[[str], None],
) -> list[Profiled]:
    """The service and its bare app under wrk, py-spy sampling each for `seconds`."""
    py_spy()
    out_dir.mkdir(parents=True, exist_ok=True)
    found: list[Profiled] = []
    for workload in workloads:
        served = serving.ready(database, workload, env_for, out_dir)
        for app, key in (("service", serving.ONE.key), ("bare", serving.BARE)):
            out = out_dir / f"profile-{workload.service}-{database}-{app}.collapsed"
            # wrk runs on while py-spy starts, samples and writes its stacks
            record = functools.partial(_record, seconds=seconds, out=out)
            loaded = serving.run(served, key, duration=seconds + 3, workdir=out_dir, during=record)
            rate, cpu = loaded.result.requests_per_second, loaded.cpu_ms or 0.0
            found.append(
                Profiled(database, workload.service, app, classify(out.read_text()), rate, cpu, str(out))
            )
            log(f"profile {database} {workload.service} {app}: {rate:,.0f} req/s, CPU {cpu:.2f} ms/req, "
                f"{sum(found[-1].samples.values())} samples")  # fmt: skip
    return found


def _record(server: processes.Running, seconds: float, out: Path) -> None:
    """py-spy on the server for `seconds`, once wrk's connections are all up and the server is busy."""
    serving.wait_until(
        server,
        lambda: sum(serving.connections(server.pid, server.service.port)) >= wrk.CONNECTIONS,
        lambda: f"wrk's {wrk.CONNECTIONS} connections to {server.url} not all up",
    )
    subprocess.run(
        [py_spy(), "record", "--pid", str(server.pid), "--rate", str(RATE), "--duration", f"{seconds:g}",
         "--format", "raw", "--output", str(out), "--nonblocking", "--subprocesses"],
        check=True, capture_output=True, timeout=seconds + 60,
    )  # fmt: skip


def figures(profiled: Sequence[Profiled]) -> list[Figure]:
    found: list[Figure] = []
    by_key = {(item.database, item.service, item.app): item for item in profiled}
    reads = {workload.service: workload.read for workload in serving.WORKLOADS}
    for item in (item for item in profiled if item.app == "service"):
        bare = by_key.get((item.database, item.service, "bare"))
        where = f"{item.service}, {LABELS[item.database]}"
        name = f"{item.service} GET {reads[item.service]}, {LABELS[item.database]}: CPU per request"
        found.append(
            Figure(PART, f"{name}, whole process", item.cpu_ms, "ms",
                   reference="bare Starlette app, same read" if bare else "",
                   reference_value=bare.cpu_ms if bare else None,
                   detail=f"{item.requests_per_second:,.0f} req/s under wrk; stacks in {item.collapsed}")
        )  # fmt: skip
        total = sum(item.samples.values())
        for layer in (*(layer for layer, _ in LAYERS), OTHER, DRIVER_THREAD):
            if count := item.samples.get(layer, 0):
                bare_cost = bare.cost_ms(layer) if bare else None
                found.append(
                    Figure(PART, f"{where}: {layer}", item.cost_ms(layer), "ms",
                           reference="bare app, same layer" if bare_cost else "",
                           reference_value=bare_cost or None, detail=f"{100 * count / total:.1f}% of samples")
                )  # fmt: skip
    return found


def measurements(profiled: Sequence[Profiled]) -> list[dict[str, Any]]:
    return [asdict(item) for item in profiled]
