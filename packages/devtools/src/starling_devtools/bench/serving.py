"""Figure 3: each service under wrk, against its bare reference and served by one process and by two.

For each service, on each database (a SQLite file, or a fresh PostgreSQL database), in one run:

- its main read path, on one uvicorn process, against a bare Starlette app doing the same read on the
  same database and rows (`bare.py`) on the same uvicorn: the ratio is what Starling's stack keeps of
  bare speed (target 70%);
- the same path served by two processes (`starling_core.serve`, gunicorn with uvicorn workers,
  granian; `servers.py`) against one: the ratio is how linear the service is in processes
  (target 1.6x), rate-limited routes included, since two processes count limits in the database;
- its main write path (`POST /users`, a 2 KB summariser run, a batch of 10 orders) on one process
  against the bare app's, with p50/p99 and errors.

Runs alternate: each round serves the bare app, then the service by each server, in an order that
rotates from round to round, and every figure is the median of its rounds, so drift on a shared
machine falls on both sides of a ratio. A run starts once every process is accepting: `/health`
answers as soon as one does, so the bench also polls /proc until each process's event loop watches a
listening socket on the port. The servers' access logs are off, core's (one line per request, as in
production) is on; the rate limit is raised so that no 429 stands in for an answer, but the limiter
still counts every limited request. Each run also records the
server's CPU seconds (process tree), and a CPU-time per request is less sensitive to other load on
the machine than a rate.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

from starling_devtools import harness, seed
from starling_devtools.bench import bare, servers, wrk
from starling_devtools.bench.results import Figure, Target
from starling_devtools.bench.stats import median, ratio
from starling_devtools.harness import processes as services
from starling_devtools.harness.environment import UNLIMITED_RATE

PART = "serving"
TARGET_BARE = 0.7
TARGET_PROCESSES = 1.6
BASE_PORT = 19101
BARE_PORT = 19131
ACCEPT_TIMEOUT = 60.0
WARM_UP_REQUESTS = 50
ORDERS = 300
BATCH = 10
WRITE_SECONDS = 10.0
WRITE_TIMEOUT = 30.0
# wrk counts an answer slower than its 2 s default as a socket error; on a machine other suites load
# that is a slow answer, not a failed one
READ_TIMEOUT = 10.0
BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-0123"
DEFAULT_SERVERS = (servers.SERVE.key, servers.GUNICORN.key, servers.GRANIAN.key)
DATABASE_LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
BARE = "bare"

Headers = dict[str, str]


# --- what each service is asked ------------------------------------------------------------------


@dataclass(frozen=True)
class Prepared:
    headers: Headers
    # the bare app's read path, which has no token to find its user by
    bare_read: str


def _token(scopes: Sequence[str], sub: str = "bench") -> str:
    # The development secret, or STARLING_JWT_SECRET when set: the services read the same settings.
    from starling_core.settings import ServiceSettings
    from starling_core.tokens import JWTConfig, issue_token

    return issue_token(
        JWTConfig.from_settings(ServiceSettings()), sub=sub, scopes=list(scopes), expires_in=3600
    )


def _minted(url: str, client: httpx.Client) -> Headers:
    """A token holding every scope the service at `url` checks, as its OpenAPI document names them."""
    document = client.get(f"{url}/openapi.json").raise_for_status().json()
    return harness.bearer(_token(sorted(harness.declared_scopes(document))))


def _users(url: str, client: httpx.Client) -> Prepared:
    """A registered user, logged in through `POST /auth/token`, reads itself."""
    body = {"name": "Bench", "email": BENCH_EMAIL, "password": BENCH_PASSWORD}
    registered = client.post(f"{url}/users", json=body)
    if registered.status_code not in (201, 409):
        registered.raise_for_status()
    headers = harness.bearer(harness.login(client, url, BENCH_EMAIL, BENCH_PASSWORD)["access_token"])
    me = client.get(f"{url}/users/me", headers=headers).raise_for_status().json()
    return Prepared(headers, f"/users/{me['id']}")


def _agents(url: str, client: httpx.Client) -> Prepared:
    return Prepared(_minted(url, client), "/api/v1/agents")


def _reporting(url: str, client: httpx.Client) -> Prepared:
    """Orders ingested (idempotently, so a second server finds them), then read."""
    caller = _minted(url, client)
    client.post(
        f"{url}/api/v1/orders", json={"orders": seed.demo_orders(ORDERS)}, headers=caller
    ).raise_for_status()
    return Prepared(caller, "/top-products?count=10")


# 2 KB of prose for the summariser: eleven sentences of mixed length.
TEXT_2KB = " ".join(
    f"Sentence {n} of the bench text talks about orders, agents and users, and about how a service "
    f"answers {'quickly' if n % 2 else 'correctly'} under load when the database is shared."
    for n in range(12)
)[:2048]


def _orders_batch() -> str:
    """A batch of `BATCH` new orders, `{{n}}` standing for what makes each request's ids unique."""
    orders = [
        {
            "order_id": f"w-{{{{n}}}}-{k}",
            "created_at": "2026-02-01T10:00:00+00:00",
            "items": [{"product_id": f"sku-{k % 4}", "title": f"Product {k % 4}", "quantity": 1 + k % 3,
                       "unit_price": 9.5}],
        }
        for k in range(BATCH)
    ]  # fmt: skip
    return json.dumps({"orders": orders}, separators=(",", ":"))


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


WORKLOADS = (
    Workload(
        "users",
        "/users/me",
        _users,
        Write("POST /users", "/users",
              '{"name":"Bench","email":"w-{{n}}@example.com","password":"bench-password-0123"}',
              connections=10, hashes=True),
    ),
    Workload(
        "agents",
        "/api/v1/agents",
        _agents,
        Write("POST /api/v1/agents/run, summarizer, 2 KB", "/api/v1/agents/run",
              '{"agent_id":"summarizer","input_text":"' + TEXT_2KB + '"}'),
    ),
    Workload(
        "reporting",
        "/top-products?count=10",
        _reporting,
        Write(f"POST /api/v1/orders, {BATCH} orders", "/api/v1/orders", _orders_batch()),
    ),
)  # fmt: skip


# --- knowing that every process accepts ----------------------------------------------------------


def epoll_targets(pid: int) -> set[int]:
    """The file descriptors registered in the epoll instances of process `pid` (Linux /proc)."""
    targets: set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            if os.readlink(entry) != "anon_inode:[eventpoll]":
                continue
            info = Path(f"/proc/{pid}/fdinfo/{entry.name}").read_text()
        except OSError:
            continue  # closed meanwhile
        targets |= parse_epoll_fdinfo(info)
    return targets


def parse_epoll_fdinfo(info: str) -> set[int]:
    """The `tfd:` entries of an epoll's /proc fdinfo: the descriptors it watches."""
    return {int(line.split()[1]) for line in info.splitlines() if line.startswith("tfd:")}


def _tree(root_pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(root_pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def accepting(root_pid: int, port: int) -> int:
    """How many processes under `root_pid` (itself included) have their event loop watching a
    listening socket on `port`, that is, accept connections on it."""
    count = 0
    for process in _tree(root_pid):
        try:
            listening = {
                connection.fd
                for connection in process.net_connections(kind="tcp")
                if connection.status == psutil.CONN_LISTEN
                and connection.laddr
                and connection.laddr.port == port
            }
            if listening & epoll_targets(process.pid):
                count += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
            continue
    return count


def wait_accepting(running: services.Running, count: int, *, timeout: float = ACCEPT_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while (found := accepting(running.pid, running.service.port)) < count:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.service.name} exited with code {running.process.returncode}")
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"{running.service.name}: {found} of {count} processes accepting after {timeout:.0f} s"
            )
        time.sleep(0.05)


def connections(root_pid: int, port: int) -> tuple[int, ...]:
    """Established connections on `port` per process under `root_pid` that holds any: how evenly the
    kernel spread the load's connections."""
    counts = []
    for process in _tree(root_pid):
        try:
            found = sum(
                1
                for connection in process.net_connections(kind="tcp")
                if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == port
            )
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if found:
            counts.append(found)
    return tuple(sorted(counts, reverse=True))


def cpu_seconds(root_pid: int) -> float:
    """User and system CPU seconds of a process tree so far (threads included, children still alive)."""
    total = 0.0
    for process in _tree(root_pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


# --- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """What a measurement is of: a service (or its bare app) on a database."""

    database: str
    service: str


@dataclass(frozen=True)
class Measured(Run):
    kind: str  # "read" or "write"
    server: str  # a Server key, or "bare"
    round: int
    result: wrk.WrkResult
    cpu_seconds: float = 0.0
    connections: tuple[int, ...] = ()  # per process, midway through the run
    hash_cpu_ms: float | None = None  # one Argon2id hash's CPU, measured beside the run

    @property
    def cpu_per_request_ms(self) -> float | None:
        return 1000 * self.cpu_seconds / self.result.requests if self.result.requests else None


@dataclass
class Plan:
    rounds: int = 2
    servers: Sequence[str] = DEFAULT_SERVERS
    writes: bool = True
    reads: bool = True
    workloads: Sequence[Workload] = WORKLOADS
    duration: float = 5.0
    extra: dict[str, Any] = field(default_factory=dict)


def rotation(items: Sequence[str], round_index: int) -> list[str]:
    """`items` started `round_index` places further on, so that no item always runs first."""
    if not items:
        return []
    shift = round_index % len(items)
    return [*items[shift:], *items[:shift]]


def database_url(env: Mapping[str, str], service: str) -> str:
    return env[f"STARLING_{service.upper()}_DATABASE_URL"]


def start(
    name: str,
    port: int,
    server: servers.Server,
    target: servers.Target,
    env: Mapping[str, str],
    log_dir: Path,
) -> services.Running:
    service = services.Service(name, port, {**env, **server.env})
    started = services.start(service, log=log_dir / f"{name}.log", argv=server.argv(target))
    try:
        services.wait_healthy([started], timeout=ACCEPT_TIMEOUT)
        wait_accepting(started, server.processes)
    except BaseException:
        stop(started)
        raise
    return started


def stop(started: services.Running) -> None:
    """Stop a server as Ctrl-C would, then kill whatever of its process tree is left (a server whose
    workers outlive it would hold the port and the CPU through the next run)."""
    tree = _tree(started.pid)
    services.stop([started])
    for process in tree[1:]:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(tree[1:], timeout=5)


def _load(
    started: services.Running,
    path: str,
    headers: Headers,
    *,
    duration: float,
    write: Write | None = None,
    script_dir: Path | None = None,
) -> tuple[wrk.WrkResult, float, tuple[int, ...]]:
    with httpx.Client(timeout=30.0) as client:
        for _ in range(WARM_UP_REQUESTS if write is None else 2):
            if write is None:
                client.get(f"{started.url}{path}", headers=headers).raise_for_status()
            else:
                body = write.body.replace("{{n}}", f"warm-{uuid.uuid4().hex}")
                client.post(
                    f"{started.url}{path}", content=body,
                    headers={**headers, "Content-Type": "application/json"},
                ).raise_for_status()  # fmt: skip
    script = None
    if write is not None:
        assert script_dir is not None
        script = wrk.post_script(script_dir, write.body, run=uuid.uuid4().hex[:8])
    before = cpu_seconds(started.pid)
    headers = {**headers, "Content-Type": "application/json"} if write is not None else headers
    seconds = duration if write is None else max(duration, WRITE_SECONDS)
    spread: list[tuple[int, ...]] = []
    sampler = threading.Timer(
        seconds / 2, lambda: spread.append(connections(started.pid, started.service.port))
    )
    sampler.start()
    try:
        # A write waits its turn behind 49 others (an Argon2id hash is tens of milliseconds of two
        # cores): slow answers are measured, not cut off at wrk's 2 s and counted as errors.
        result = wrk.run(
            f"{started.url}{path}",
            duration=seconds,
            headers=headers,
            script=script,
            timeout=READ_TIMEOUT if write is None else WRITE_TIMEOUT,
            connections=wrk.CONNECTIONS if write is None else write.connections,
        )
    finally:
        sampler.cancel()
    return result, cpu_seconds(started.pid) - before, spread[0] if spread else ()


@dataclass(frozen=True)
class Served:
    """One workload on one database, ready to be served: where, with what, for which caller."""

    database: str
    workload: Workload
    port: int
    env: Mapping[str, str]
    prepared: Prepared

    def start(self, server_key: str, workdir: Path) -> services.Running:
        """The service served by `server_key`, or its bare app (`BARE`) on the same database."""
        name = f"{self.workload.service}-{server_key}"
        if server_key == BARE:
            env = {**self.env, bare.DATABASE_VARIABLE: database_url(self.env, self.workload.service)}
            target = servers.Target(f"{bare.__name__}:{self.workload.service}", "127.0.0.1", BARE_PORT)
            return start(name, BARE_PORT, servers.ONE, target, env, workdir)
        target = _service_target(self.workload, self.port)
        return start(name, self.port, servers.ALL[server_key], target, self.env, workdir)

    def read_path(self, server_key: str) -> str:
        return self.prepared.bare_read if server_key == BARE else self.workload.read


def _service_target(workload: Workload, port: int) -> servers.Target:
    return servers.Target(services.Service(workload.service, port).app, "127.0.0.1", port)


def ready(
    database: str, workload: Workload, port: int, env_for: Callable[[str], Mapping[str, str]], workdir: Path
) -> Served:
    """The workload's caller, prepared on one process of the service, which migrates the database first."""
    env = {"STARLING_RATE_LIMIT": UNLIMITED_RATE, **env_for(workload.service)}
    started = start(workload.service, port, servers.ONE, _service_target(workload, port), env, workdir)
    try:
        with httpx.Client(timeout=30.0) as client:
            prepared = workload.prepare(started.url, client)
    finally:
        stop(started)
    return Served(database, workload, port, env, prepared)


def _run(
    served: Served, server_key: str, round_index: int, *, plan: Plan, workdir: Path, write: Write | None
) -> Measured:
    started = served.start(server_key, workdir)
    path = write.path if write else served.read_path(server_key)
    try:
        result, cpu, spread = _load(
            started, path, served.prepared.headers, duration=plan.duration, write=write, script_dir=workdir
        )
    finally:
        stop(started)
    kind = "write" if write else "read"
    hashed = argon2_cpu_ms() if write is not None and write.hashes else None
    return Measured(
        served.database, served.workload.service, kind, server_key, round_index, result, cpu, spread, hashed
    )


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
    env_for: Callable[[str], Mapping[str, str]],
    *,
    plan: Plan | None = None,
    workdir: Path | None = None,
    duration: float | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Measured]:
    """Every workload's runs on the database `env_for(service)` points at (`duration`: the seconds of
    each wrk run of the default plan; scripts and logs in `workdir`, a temporary one by default)."""
    wrk.executable()  # fail before starting anything when wrk is missing
    if plan is None:
        plan = Plan() if duration is None else Plan(duration=duration)
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="starling-bench-serving-"))
    measured: list[Measured] = []
    workdir.mkdir(parents=True, exist_ok=True)
    for index, workload in enumerate(plan.workloads):
        served = ready(database, workload, BASE_PORT + index, env_for, workdir)
        runs: list[tuple[str, int, Write | None]] = [
            (key, round_index, None)
            for round_index in range(plan.rounds if plan.reads else 0)
            for key in rotation([BARE, servers.ONE.key, *plan.servers], round_index)
        ]
        if plan.writes:
            runs += [
                (key, round_index, workload.write)
                for round_index in range(plan.rounds)
                for key in rotation([BARE, servers.ONE.key], round_index)
            ]
        for key, round_index, write in runs:
            item = _run(served, key, round_index, plan=plan, workdir=workdir, write=write)
            measured.append(item)
            log(
                f"serving {database} {workload.service} {item.kind} {key} round {round_index + 1}: "
                f"{item.result.requests_per_second:,.0f} req/s, p50 {1000 * item.result.p50:.1f} ms, "
                f"p99 {1000 * item.result.p99:.1f} ms, CPU {item.cpu_per_request_ms or 0:.2f} ms/req, "
                f"connections {'/'.join(map(str, item.connections))}, errors {item.result.errors}"
            )
    return measured


# --- figures -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """The median of one configuration's rounds."""

    requests_per_second: float
    p50: float
    p99: float
    errors: int
    cpu_ms: float | None
    rounds: tuple[float, ...]
    connections: tuple[int, ...] = ()
    hash_cpu_ms: float | None = None

    @classmethod
    def of(cls, runs: Sequence[Measured]) -> Summary:
        cpu = [run.cpu_per_request_ms for run in runs if run.cpu_per_request_ms is not None]
        return cls(
            requests_per_second=median([run.result.requests_per_second for run in runs]),
            p50=median([run.result.p50 for run in runs]),
            p99=median([run.result.p99 for run in runs]),
            errors=sum(run.result.errors for run in runs),
            cpu_ms=statistics.median(cpu) if cpu else None,
            rounds=tuple(run.result.requests_per_second for run in runs),
            connections=runs[0].connections,
            hash_cpu_ms=median(hashed)
            if (hashed := [r.hash_cpu_ms for r in runs if r.hash_cpu_ms])
            else None,
        )

    def detail(self) -> str:
        rounds = "/".join(f"{rate:,.0f}" for rate in self.rounds)
        cpu = f", CPU {self.cpu_ms:.2f} ms/req" if self.cpu_ms is not None else ""
        if len(self.connections) > 1:
            cpu += f", connections {'/'.join(map(str, self.connections))}"
        if self.hash_cpu_ms and self.cpu_ms:
            share = self.hash_cpu_ms / self.cpu_ms
            cpu += f", Argon2id {self.hash_cpu_ms:.0f} ms CPU a hash: {share:.0%} of the CPU per request"
        return (
            f"p50 {1000 * self.p50:.1f} ms, p99 {1000 * self.p99:.1f} ms, {self.errors} errors{cpu}, "
            f"rounds {rounds}"
        )


def _against_bare(one: Summary, bare_summary: Summary | None) -> str:
    if bare_summary is None:
        return one.detail()
    cpu = ""
    if one.cpu_ms and bare_summary.cpu_ms:
        # CPU per request moves less with the machine's other load than a rate does
        cpu = f"CPU per request {bare_summary.cpu_ms / one.cpu_ms:.2f}x of bare's; "
    return f"{cpu}{one.detail()}; bare: {bare_summary.detail()}"


def _target(value: float | None, reference: float | None, bound: float, errors: int) -> Target:
    measured = ratio(value, reference)
    met = None if measured is None else measured >= bound and errors == 0
    return Target(f">= {bound:g}x, 0 errors", met)


def figures(measured: Sequence[Measured]) -> list[Figure]:
    labels = {server.key: server.label for server in servers.ALL.values()}
    groups: dict[tuple[str, str, str], dict[str, list[Measured]]] = {}
    for item in measured:
        groups.setdefault((item.database, item.service, item.kind), {}).setdefault(item.server, []).append(
            item
        )
    workloads = {workload.service: workload for workload in WORKLOADS}
    found: list[Figure] = []
    for (database, service, kind), by_server in groups.items():
        summaries = {key: Summary.of(runs) for key, runs in by_server.items()}
        where = DATABASE_LABELS.get(database, database)
        workload = workloads.get(service)
        what = (workload.write.label if kind == "write" else f"GET {workload.read}") if workload else kind
        bare_summary, one = summaries.get(BARE), summaries.get(servers.ONE.key)
        if one is not None:
            reference = bare_summary.requests_per_second if bare_summary else None
            found.append(
                Figure(
                    PART,
                    f"{service} {what}, {where}: 1 process, against bare Starlette",
                    one.requests_per_second,
                    "req/s",
                    reference="bare Starlette, same read, same server"
                    if kind == "read"
                    else "bare Starlette, same writes, same server",
                    reference_value=reference,
                    target=_target(one.requests_per_second, reference, TARGET_BARE, one.errors)
                    if kind == "read"
                    else Target(
                        "0 errors", one.errors == 0 and (bare_summary is None or bare_summary.errors == 0)
                    ),
                    detail=_against_bare(one, bare_summary),
                )
            )
        for key, summary in summaries.items():
            if key in (BARE, servers.ONE.key):
                continue
            reference = one.requests_per_second if one else None
            found.append(
                Figure(
                    PART,
                    f"{service} {what}, {where}: {labels.get(key, key)}",
                    summary.requests_per_second,
                    "req/s",
                    reference=labels[servers.ONE.key] if reference is not None else "",
                    reference_value=reference,
                    target=_target(summary.requests_per_second, reference, TARGET_PROCESSES, summary.errors),
                    detail=summary.detail(),
                )
            )
    return found


def measurements(measured: Sequence[Measured]) -> list[dict[str, Any]]:
    return [
        {
            "database": item.database,
            "service": item.service,
            "kind": item.kind,
            "server": item.server,
            "round": item.round,
            "requests": item.result.requests,
            "seconds": item.result.seconds,
            "requests_per_second": item.result.requests_per_second,
            "p50_ms": 1000 * item.result.p50,
            "p99_ms": 1000 * item.result.p99,
            "non_2xx": item.result.non_2xx,
            "socket_errors": dict(item.result.socket_errors),
            "cpu_seconds": item.cpu_seconds,
            "connections": list(item.connections),
        }
        for item in measured
    ]
