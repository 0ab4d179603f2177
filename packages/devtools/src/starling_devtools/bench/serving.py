"""Figure 3: each service under wrk, against its bare reference and served by one process and by two.

For each service, on each database (a SQLite file, or a fresh PostgreSQL database), in one run:

- its main read path, on one process of `starling_core.serve`, against a bare Starlette app doing the
  same read on the same database and rows (`bare.py`) on the same server: the ratio is what Starling's
  stack keeps of bare speed (target 70%);
- the same path served by two processes against one (target 1.6x): by `starling_core.serve
  --processes 2` (one `SO_REUSEPORT` socket per process), by gunicorn's arbiter with two uvicorn workers
  (with what `serve` gives its children: `gunicorn_worker.GuardedUvicornWorker`) and by granian (a Rust
  server, its own HTTP/1.1 and worker supervision) with two workers, its header read timeout and
  back-pressure set to what core's protocol and cap do. Two processes count rate limits in the
  database, as `serve` makes its children do, so rate-limited routes pay for it here;
- its main write path (`POST /users`, a 2 KB summariser run, a batch of 10 orders) on one process
  against the bare app's, with p50/p99 and errors.

Runs alternate (`results.alternating`) and every figure is the median of its rounds, so drift on a
shared machine falls on both sides of a ratio. A run starts once every process is accepting: `/health`
answers as soon as one does, so the bench also polls /proc until each process's event loop watches a
listening socket on the port. The servers' access logs are off, core's (one line per request, as in
production) is on: gunicorn and granian have no switch for it. The rate limit is raised so that no 429
stands in for an answer, but the limiter still counts every limited request. Each run also records the
server's CPU seconds (process tree: a CPU time per request is less sensitive to other load on the
machine than a rate) and, midway, how many of wrk's connections each process holds.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from starling_devtools import harness, seed
from starling_devtools.bench import bare, wrk
from starling_devtools.bench.results import LABELS, Figure, Target, alternating, median, ratio
from starling_devtools.harness import processes
from starling_devtools.harness.environment import UNLIMITED_RATE

PART = "serving"
TARGET_BARE = 0.7
TARGET_PROCESSES = 1.6
ACCEPT_TIMEOUT = 60.0
WARM_UP_REQUESTS = 50
ORDERS = 300
BATCH = 10
WRITE_SECONDS = 10.0
# wrk counts an answer slower than its timeout (2 s by default) as a socket error; on a machine other
# suites load that is a slow answer, not a failed one. A write waits its turn behind the others (an
# Argon2id hash is tens of milliseconds of two cores).
READ_TIMEOUT, WRITE_TIMEOUT = 10.0, 30.0
BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-0123"
BARE = "bare"
HEADER_TIMEOUT_MS = 10_000  # core's STARLING_HEADER_TIMEOUT default
CONCURRENCY = 1000  # core's --limit-concurrency default
WORKER_CLASS = "starling_devtools.bench.gunicorn_worker.GuardedUvicornWorker"

Headers = dict[str, str]


# --- the servers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    key: str
    label: str
    processes: int
    command: str  # after `python -m`; `{app}` and `{port}` stand for the served app's
    shared_count: bool = True  # told to count rate limits in the database (serve does it itself)

    def argv(self, app: str, port: int) -> list[str]:
        return [sys.executable, "-m", *self.command.format(app=app, port=port).split()]


SERVE_COMMAND = "starling_core.serve {app} --host 127.0.0.1 --port {port} --processes "
# One process of serve: the reference of every two-process figure, and the server of every bare app.
ONE = Server("serve-1", "starling_core.serve, 1 process", 1, SERVE_COMMAND + "1", shared_count=False)
SERVE = Server("serve-2", "starling_core.serve, 2 processes", 2, SERVE_COMMAND + "2", shared_count=False)
GUNICORN = Server(
    "gunicorn-2",
    "gunicorn + 2 uvicorn workers",
    2,
    f"gunicorn {{app}} --bind 127.0.0.1:{{port}} --workers 2 --worker-class {WORKER_CLASS} "
    "--graceful-timeout 10",
)
GRANIAN = Server(
    "granian-2",
    "granian, 2 workers",
    2,
    "granian {app} --interface asgi --host 127.0.0.1 --port {port} --workers 2 --http 1 --no-access-log "
    f"--http1-header-read-timeout {HEADER_TIMEOUT_MS} --backpressure {CONCURRENCY} --respawn-failed-workers "
    "--log-level warning",
)
SERVERS = {server.key: server for server in (ONE, SERVE, GUNICORN, GRANIAN)}
TWO_PROCESSES = (SERVE.key, GUNICORN.key, GRANIAN.key)


# --- what each service is asked ------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    headers: Headers
    bare_read: str  # the bare app's read path, which has no token to find its user by


def _minted(url: str, client: httpx.Client) -> Headers:
    """A token holding every scope the service at `url` checks, as its OpenAPI document names them,
    signed as the services sign (the development secret, or STARLING_JWT_SECRET when set)."""
    from starling_core.settings import ServiceSettings
    from starling_core.tokens import JWTConfig, issue_token

    document = client.get(f"{url}/openapi.json").raise_for_status().json()
    config = JWTConfig.from_settings(ServiceSettings())
    scopes = sorted(harness.declared_scopes(document))
    return harness.bearer(issue_token(config, sub="bench", scopes=scopes, expires_in=3600))


def _users(url: str, client: httpx.Client) -> Prepared:
    """A registered user, logged in through `POST /auth/token`, reads itself."""
    harness.register(client, url, BENCH_EMAIL, BENCH_PASSWORD)
    headers = harness.bearer(harness.login(client, url, BENCH_EMAIL, BENCH_PASSWORD)["access_token"])
    me = client.get(f"{url}/users/me", headers=headers).raise_for_status().json()
    return Prepared(headers, f"/users/{me['id']}")


def _agents(url: str, client: httpx.Client) -> Prepared:
    return Prepared(_minted(url, client), "/api/v1/agents")


def _reporting(url: str, client: httpx.Client) -> Prepared:
    """Orders ingested (idempotently, so a second server finds them), then read."""
    caller = _minted(url, client)
    orders = {"orders": seed.demo_orders(ORDERS)}
    client.post(f"{url}/api/v1/orders", json=orders, headers=caller).raise_for_status()
    return Prepared(caller, "/top-products?count=10")


# 2 KB of prose for the summariser: eleven sentences of mixed length.
TEXT_2KB = " ".join(
    f"Sentence {n} of the bench text talks about orders, agents and users, and about how a service "
    f"answers {'quickly' if n % 2 else 'correctly'} under load when the database is shared."
    for n in range(12)
)[:2048]
# `BATCH` new orders, `{{n}}` standing for what makes each request's ids unique.
ORDERS_BATCH = json.dumps({"orders": [
    {"order_id": f"w-{{{{n}}}}-{k}", "created_at": "2026-02-01T10:00:00+00:00", "items": [
        {"product_id": f"sku-{k % 4}", "title": f"Product {k % 4}", "quantity": 1 + k % 3, "unit_price": 9.5}
    ]}
    for k in range(BATCH)
]}, separators=(",", ":"))  # fmt: skip


@dataclass(frozen=True)
class Write:
    label: str  # e.g. "POST /users"
    path: str
    body: str  # JSON, `{{n}}` unique per request
    # wrk's connections: 50 registrations at once share two cores fairly, so each takes 50 hashes'
    # time and none may finish within a run; 10 keep both cores just as busy
    connections: int = wrk.CONNECTIONS
    hashes: bool = False  # an Argon2id hash per request: its share of the CPU is reported


@dataclass(frozen=True)
class Workload:
    service: str
    read: str
    prepare: Callable[[str, httpx.Client], Prepared]
    write: Write

    @property
    def app(self) -> str:
        return processes.Service(self.service, 0).app


REGISTRATION = '{"name":"Bench","email":"w-{{n}}@example.com","password":"bench-password-0123"}'
SUMMARY_RUN = '{"agent_id":"summarizer","input_text":"' + TEXT_2KB + '"}'
WORKLOADS = (
    Workload("users", "/users/me", _users, Write("POST /users", "/users", REGISTRATION, 10, hashes=True)),
    Workload("agents", "/api/v1/agents", _agents,
             Write("POST /api/v1/agents/run, summarizer, 2 KB", "/api/v1/agents/run", SUMMARY_RUN)),
    Workload("reporting", "/top-products?count=10", _reporting,
             Write(f"POST /api/v1/orders, {BATCH} orders", "/api/v1/orders", ORDERS_BATCH)),
)  # fmt: skip


# --- knowing that every process accepts ----------------------------------------------------------


def parse_epoll_fdinfo(info: str) -> set[int]:
    """The `tfd:` entries of an epoll's /proc fdinfo: the descriptors it watches."""
    return {int(line.split()[1]) for line in info.splitlines() if line.startswith("tfd:")}


def epoll_targets(pid: int) -> set[int]:
    """The file descriptors registered in the epoll instances of process `pid` (Linux /proc)."""
    targets: set[int] = set()
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            if os.readlink(entry) == "anon_inode:[eventpoll]":
                targets |= parse_epoll_fdinfo(Path(f"/proc/{pid}/fdinfo/{entry.name}").read_text())
    return targets


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    return []


def _sockets(pid: int, port: int, status: str) -> list[tuple[psutil.Process, set[int]]]:
    """Per process under `pid` (itself included), its TCP sockets on local `port` in `status`."""
    found = []
    for process in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            connections = process.net_connections(kind="tcp")
            found.append(
                (process, {c.fd for c in connections if c.status == status and c.laddr.port == port})
            )
    return found


def accepting(pid: int, port: int) -> int:
    """How many processes under `pid` (itself included) have their event loop watching a listening
    socket on `port`, that is, accept connections on it."""
    return sum(
        1 for process, fds in _sockets(pid, port, psutil.CONN_LISTEN) if fds & epoll_targets(process.pid)
    )


def connections(pid: int, port: int) -> tuple[int, ...]:
    """Established connections on `port` per process that holds any: how evenly the kernel spread the
    load's connections."""
    return tuple(
        sorted((len(fds) for _, fds in _sockets(pid, port, psutil.CONN_ESTABLISHED) if fds), reverse=True)
    )


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process tree so far (threads included, children still alive)."""
    total = 0.0
    for process in _tree(pid):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


# --- runs ----------------------------------------------------------------------------------------


def start(name: str, server: Server, app: str, env: Mapping[str, str], log_dir: Path) -> processes.Running:
    """`app` served by `server` on a free port, once every one of its processes accepts."""
    port = harness.free_port()
    shared = {"STARLING_RATE_LIMIT_BACKEND": "database"} if server.shared_count else {}
    service = processes.Service(name, port, {**env, **shared})
    started = processes.start(service, log=log_dir / f"{name}.log", argv=server.argv(app, port))
    try:
        processes.wait_healthy([started], timeout=ACCEPT_TIMEOUT)
        wait_until(
            started,
            lambda: accepting(started.pid, port) >= server.processes,
            lambda: f"{name}: {accepting(started.pid, port)} of {server.processes} processes accepting",
        )
    except BaseException:
        stop(started)
        raise
    return started


def wait_until(server: processes.Running, ready: Callable[[], bool], what: Callable[[], str]) -> None:
    """Poll `ready` (a count of the server's sockets, which nothing announces) until it holds; fail with
    `what()` once the server exits or ACCEPT_TIMEOUT passes."""
    deadline = time.monotonic() + ACCEPT_TIMEOUT
    while not ready():
        code = server.process.poll()
        if code is not None or time.monotonic() > deadline:
            why = f"exited with {code}" if code is not None else f"not within {ACCEPT_TIMEOUT:.0f} s"
            raise RuntimeError(f"{what()}, {why}")
        time.sleep(0.05)


def stop(started: processes.Running) -> None:
    """Stop a server as Ctrl-C would, then kill whatever of its process tree is left (a server whose
    workers outlive it would hold the port and the CPU through the next run)."""
    tree = _tree(started.pid)
    processes.stop([started])
    for process in tree[1:]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(tree[1:], timeout=5)


@dataclass(frozen=True)
class Served:
    """One workload on one database, ready to be served: where, with what, for which caller."""

    database: str
    workload: Workload
    env: Mapping[str, str]
    prepared: Prepared

    def start(self, server_key: str, workdir: Path) -> processes.Running:
        """The service served by `server_key`, or its bare app (`BARE`) on the same database."""
        service = self.workload.service
        name = f"{service}-{server_key}"
        if server_key == BARE:
            env = {**self.env, bare.DATABASE_VARIABLE: self.env[f"STARLING_{service.upper()}_DATABASE_URL"]}
            return start(name, ONE, f"{bare.__name__}:{service}", env, workdir)
        return start(name, SERVERS[server_key], self.workload.app, self.env, workdir)

    def read_path(self, server_key: str) -> str:
        return self.prepared.bare_read if server_key == BARE else self.workload.read


EnvFor = Callable[[str], Mapping[str, str]]  # a service's name to its database's environment


def ready(database: str, workload: Workload, env_for: EnvFor, workdir: Path) -> Served:
    """The workload's caller, prepared on one process of the service, which migrates the database first."""
    env = {"STARLING_RATE_LIMIT": UNLIMITED_RATE, **env_for(workload.service)}
    started = start(workload.service, ONE, workload.app, env, workdir)
    try:
        with httpx.Client(timeout=30.0) as client:
            prepared = workload.prepare(started.url, client)
    finally:
        stop(started)
    return Served(database, workload, env, prepared)


def warm_up(url: str, headers: Headers, write: Write | None) -> None:
    """Unmeasured requests first: first-call caches, compiled statements, the pool's connections."""
    with httpx.Client(timeout=30.0, headers=headers) as client:
        for _ in range(WARM_UP_REQUESTS if write is None else 2):
            if write is None:
                client.get(url).raise_for_status()
            else:
                client.post(
                    url, content=write.body.replace("{{n}}", f"warm-{uuid.uuid4().hex}")
                ).raise_for_status()


@dataclass(frozen=True)
class Measured:
    database: str
    service: str
    kind: str  # "read" or "write"
    server: str  # a Server key, or "bare"
    round: int
    result: wrk.WrkResult
    cpu_seconds: float = 0.0
    connections: tuple[int, ...] = ()  # per process, midway through the run
    hash_cpu_ms: float | None = None  # one Argon2id hash's CPU, measured beside the run

    @property
    def cpu_ms(self) -> float | None:
        """CPU per request, which moves less with the machine's other load than a rate."""
        return 1000 * self.cpu_seconds / self.result.requests if self.result.requests else None


def run(
    served: Served,
    key: str,
    number: int = 0,
    *,
    write: Write | None = None,
    duration: float,
    workdir: Path,
    during: Callable[[processes.Running], None] | None = None,
) -> Measured:
    """One wrk run on a fresh server (`key`) after its warm-up; `during(server)` runs beside the load."""
    started = served.start(key, workdir)
    url = f"{started.url}{write.path if write else served.read_path(key)}"
    headers = {**served.prepared.headers, **({"Content-Type": "application/json"} if write else {})}
    seconds, timeout, clients = (duration, READ_TIMEOUT, wrk.CONNECTIONS)
    if write:
        seconds, timeout, clients = (max(duration, WRITE_SECONDS), WRITE_TIMEOUT, write.connections)
    spread: list[tuple[int, ...]] = []
    sampler = threading.Timer(
        seconds / 2, lambda: spread.append(connections(started.pid, started.service.port))
    )
    try:
        warm_up(url, headers, write)
        script = wrk.script(workdir, write.body if write else None)
        before = cpu_seconds(started.pid)
        sampler.start()
        with ThreadPoolExecutor(1) as beside:
            alongside = beside.submit(during, started) if during else None
            result = wrk.run(
                url, script, duration=seconds, headers=headers, timeout=timeout, connections=clients
            )
            cpu = cpu_seconds(started.pid) - before
            if alongside:
                alongside.result()  # what runs beside fails the run with its own error
    finally:
        sampler.cancel()
        stop(started)
    hashed = argon2_cpu_ms() if write is not None and write.hashes else None
    kind, service = "write" if write else "read", served.workload.service
    return Measured(served.database, service, kind, key, number, result, cpu, (spread or [()])[0], hashed)


def argon2_cpu_ms(samples: int = 3) -> float:
    """CPU milliseconds of one Argon2id hash with argon2-cffi's defaults (the users service's), all of
    its lanes' threads counted: the least a registration can cost."""
    from argon2 import PasswordHasher

    hasher = PasswordHasher()
    started = time.process_time()
    for _ in range(samples):
        hasher.hash(BENCH_PASSWORD)
    return 1000 * (time.process_time() - started) / samples


def measure(
    database: str,
    env_for: EnvFor,
    *,
    workloads: Sequence[Workload] = WORKLOADS,
    servers: Sequence[str] = TWO_PROCESSES,
    rounds: int = 2,
    duration: float = 5.0,
    workdir: Path,
    log: Callable[[str], None],
) -> list[Measured]:
    """Every workload's runs on the database `env_for(service)` points at: the read path by the bare
    app, one process and `servers`, the write path by the bare app and one process; `duration` seconds
    of wrk a run (writes at least `WRITE_SECONDS`); scripts and logs in `workdir`."""
    wrk.executable()  # fail before starting anything when wrk is missing
    workdir.mkdir(parents=True, exist_ok=True)
    measured: list[Measured] = []
    for workload in workloads:
        served = ready(database, workload, env_for, workdir)
        reads = [(number, key, None) for number, key in alternating([BARE, ONE.key, *servers], rounds)]
        writes = [(number, key, workload.write) for number, key in alternating([BARE, ONE.key], rounds)]
        for number, key, write in reads + writes:
            item = run(served, key, number, write=write, duration=duration, workdir=workdir)
            measured.append(item)
            where = f"{database} {workload.service} {item.kind} {key}"
            log(f"serving {where} round {number + 1}: {detail([item])}")
    return measured


# --- figures -------------------------------------------------------------------------------------


def rate(runs: Sequence[Measured]) -> float:
    """The median rate of one configuration's rounds."""
    return median([run.result.requests_per_second for run in runs])


def cpu_ms(runs: Sequence[Measured]) -> float | None:
    cpu = [run.cpu_ms for run in runs if run.cpu_ms is not None]
    return median(cpu) if cpu else None


def errors(runs: Sequence[Measured]) -> int:
    return sum(run.result.errors for run in runs)


def detail(runs: Sequence[Measured]) -> str:
    """Medians of one configuration's rounds beside its rate: latencies, errors, CPU, the spread."""
    p50, p99 = (1000 * median([getattr(run.result, p) for run in runs]) for p in ("p50", "p99"))
    found = f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, {errors(runs)} errors"
    if (cpu := cpu_ms(runs)) is not None:
        found += f", CPU {cpu:.2f} ms/req"
    if len(runs[0].connections) > 1:
        found += f", connections {'/'.join(map(str, runs[0].connections))}"
    if (hashed := [run.hash_cpu_ms for run in runs if run.hash_cpu_ms]) and cpu:
        hash_ms = median(hashed)
        found += f", Argon2id {hash_ms:.0f} ms CPU a hash: {hash_ms / cpu:.0%} of the CPU per request"
    return f"{found}, rounds {'/'.join(f'{run.result.requests_per_second:,.0f}' for run in runs)}"


def _target(value: float, reference: float | None, bound: float, errors: int) -> Target:
    measured = ratio(value, reference)
    return Target(f">= {bound:g}x, 0 errors", None if measured is None else measured >= bound and errors == 0)


def figures(measured: Sequence[Measured]) -> list[Figure]:
    """Per workload, path and database: one process against the bare app, then each two-process server
    against one process; every value the median of its rounds."""
    groups: dict[tuple[str, str, str], dict[str, list[Measured]]] = {}
    for item in measured:
        groups.setdefault((item.database, item.service, item.kind), {}).setdefault(item.server, []).append(
            item
        )
    workloads = {workload.service: workload for workload in WORKLOADS}
    found: list[Figure] = []
    for (database, service, kind), by_server in groups.items():
        workload = workloads[service]
        path = workload.write.label if kind == "write" else f"GET {workload.read}"
        what = f"{service} {path}, {LABELS[database]}"
        bare_runs, one = by_server.pop(BARE, []), by_server.pop(ONE.key)
        reference = rate(bare_runs) if bare_runs else None
        text = detail(one)
        if bare_runs:
            text = f"{text}; bare: {detail(bare_runs)}"
            if (cpu := cpu_ms(one)) and (bare_cpu := cpu_ms(bare_runs)):
                text = f"CPU per request {bare_cpu / cpu:.2f}x of bare's; {text}"
        if kind == "read":
            target = _target(rate(one), reference, TARGET_BARE, errors(one))
        else:
            target = Target("0 errors", errors(one) + errors(bare_runs) == 0)
        name = f"{what}: 1 process, against bare Starlette"
        same = f"bare Starlette, same {'read' if kind == 'read' else 'writes'}, same server"
        found.append(Figure(PART, name, rate(one), "req/s", same, reference, target, detail=text))
        for key, runs in by_server.items():
            target = _target(rate(runs), rate(one), TARGET_PROCESSES, errors(runs))
            name = f"{what}: {SERVERS[key].label}"
            found.append(
                Figure(PART, name, rate(runs), "req/s", ONE.label, rate(one), target, detail=detail(runs))
            )
    return found


def measurements(measured: Sequence[Measured]) -> list[dict[str, Any]]:
    return [asdict(item) | {"requests_per_second": item.result.requests_per_second} for item in measured]
