"""Figure 3: each service's main read path under wrk, served by one process and by two.

Three ways to serve, one after another on the same database file (or PostgreSQL database):

- `uvicorn`, one process: the reference;
- `uvicorn --workers 2`, stock: its shared socket loses TCP_NODELAY (uvicorn issue 3149), measured as
  the reference for what `starling_core.serve` fixes;
- `python -m starling_core.serve --processes 2`: one SO_REUSEPORT socket per process.

A run starts once every process is accepting: `/health` answers as soon as one does, so the bench also
polls /proc until each process's event loop watches a listening socket on the port. Access logs are off
in all three; the rate limit is raised so that no 429 stands in for an answer (the in-memory limiter
counts per process anyway).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from starling_devtools import seed, services
from starling_devtools.bench import wrk
from starling_devtools.bench.results import Figure, Target
from starling_devtools.bench.stats import ratio

PART = "serving"
TARGET_RATIO = 1.6
BASE_PORT = 19101
ACCEPT_TIMEOUT = 60.0
WARM_UP_REQUESTS = 50
ORDERS = 300
BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password-0123"

Headers = dict[str, str]


@dataclass(frozen=True)
class Server:
    """One way of serving an app: its label, its process count, and its command line."""

    key: str
    label: str
    processes: int
    argv: Callable[[services.Service], list[str]]


def _uvicorn(workers: int) -> Callable[[services.Service], list[str]]:
    def argv(service: services.Service) -> list[str]:
        extra = ["--workers", str(workers)] if workers > 1 else []
        return [*services.command(service), "--no-access-log", *extra]

    return argv


def _serve(processes: int) -> Callable[[services.Service], list[str]]:
    def argv(service: services.Service) -> list[str]:
        return [
            sys.executable, "-m", "starling_core.serve", service.app, "--host", service.host,
            "--port", str(service.port), "--processes", str(processes), "--no-access-log",
        ]  # fmt: skip

    return argv


ONE = Server("uvicorn-1", "uvicorn, 1 process", 1, _uvicorn(1))
STOCK = Server("uvicorn-workers-2", "uvicorn --workers 2 (stock)", 2, _uvicorn(2))
SERVE = Server("serve-2", "starling_core.serve, 2 processes", 2, _serve(2))
SERVERS = (ONE, STOCK, SERVE)


def _token(scopes: Sequence[str], sub: str = "bench") -> str:
    # The development secret, or STARLING_JWT_SECRET when set: the services read the same settings.
    from starling_core.settings import ServiceSettings
    from starling_core.tokens import JWTConfig, issue_token

    return issue_token(
        JWTConfig.from_settings(ServiceSettings()), sub=sub, scopes=list(scopes), expires_in=3600
    )


def _users(url: str, client: httpx.Client) -> Headers:
    """A registered user, logged in through `POST /auth/token`, reads itself."""
    body = {"name": "Bench", "email": BENCH_EMAIL, "password": BENCH_PASSWORD}
    registered = client.post(f"{url}/users", json=body)
    if registered.status_code not in (201, 409):
        registered.raise_for_status()
    return {"Authorization": f"Bearer {seed.token(url, BENCH_EMAIL, BENCH_PASSWORD, client=client)}"}


def declared_scopes(url: str, client: httpx.Client) -> list[str]:
    """Every scope the service at `url` checks, read from its OpenAPI document: a tool needs no list."""
    document = client.get(f"{url}/openapi.json").raise_for_status().json()
    return sorted(
        {
            scope
            for operations in document["paths"].values()
            for operation in operations.values()
            for requirement in operation.get("security", [])
            for scope in requirement.get("bearer", [])
        }
    )


def _agents(url: str, client: httpx.Client) -> Headers:
    return {"Authorization": f"Bearer {_token(declared_scopes(url, client))}"}


def _reporting(url: str, client: httpx.Client) -> Headers:
    """Orders ingested (idempotently, so a second server finds them), then read."""
    caller = {"Authorization": f"Bearer {_token(declared_scopes(url, client))}"}
    client.post(
        f"{url}/api/v1/orders", json={"orders": seed.demo_orders(ORDERS)}, headers=caller
    ).raise_for_status()
    return caller


@dataclass(frozen=True)
class ReadPath:
    service: str
    path: str
    prepare: Callable[[str, httpx.Client], Headers]


READ_PATHS = (
    ReadPath("users", "/users/me", _users),
    ReadPath("agents", "/api/v1/agents", _agents),
    ReadPath("reporting", "/top-products?count=10", _reporting),
)


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


def accepting(root_pid: int, port: int) -> int:
    """How many processes under `root_pid` (itself included) have their event loop watching a
    listening socket on `port`, that is, accept connections on it."""
    try:
        root = psutil.Process(root_pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    count = 0
    for process in tree:
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


# --- runs ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    database: str
    service: str
    path: str
    server: str  # a Server key
    result: wrk.WrkResult


def measure(
    database: str,
    env_for: Callable[[str], Mapping[str, str]],
    *,
    duration: float,
    servers: Sequence[Server] = SERVERS,
    read_paths: Sequence[ReadPath] = READ_PATHS,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> list[Measured]:
    """Every read path under wrk with every server, on the database `env_for(service)` points at."""
    wrk.executable()  # fail before starting anything when wrk is missing
    measured: list[Measured] = []
    for index, read_path in enumerate(read_paths):
        service = services.Service(
            read_path.service,
            BASE_PORT + index,
            {"STARLING_RATE_LIMIT": services.UNLIMITED_RATE, **env_for(read_path.service)},
        )
        headers: Headers | None = None
        for server in servers:
            started = services.start(service, argv=server.argv(service), quiet=True)
            try:
                services.wait_healthy([started], timeout=ACCEPT_TIMEOUT)
                wait_accepting(started, server.processes)
                with httpx.Client(timeout=30.0) as client:
                    if headers is None:
                        headers = read_path.prepare(service.url, client)
                    for _ in range(WARM_UP_REQUESTS):
                        client.get(f"{service.url}{read_path.path}", headers=headers).raise_for_status()
                result = wrk.run(f"{service.url}{read_path.path}", duration=duration, headers=headers)
            finally:
                services.stop([started])
            measured.append(Measured(database, read_path.service, read_path.path, server.key, result))
            log(
                f"serving {database} {read_path.service} {server.label}: {result.requests_per_second:,.0f} "
                f"req/s, p99 {1000 * result.p99:.1f} ms, errors {result.errors}"
            )
    return measured


def _detail(result: wrk.WrkResult) -> str:
    errors = f"{result.non_2xx} non-2xx, socket errors {sum(result.socket_errors.values())}"
    return f"p50 {1000 * result.p50:.1f} ms, p99 {1000 * result.p99:.1f} ms, {errors}"


def figures(measured: Sequence[Measured]) -> list[Figure]:
    labels = {server.key: server.label for server in SERVERS}
    databases = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    found: list[Figure] = []
    groups: dict[tuple[str, str, str], dict[str, wrk.WrkResult]] = {}
    for item in measured:
        groups.setdefault((item.database, item.service, item.path), {})[item.server] = item.result
    for (database, service, path), results in groups.items():
        one = results.get(ONE.key)
        for key, result in results.items():
            name = f"{service} GET {path}, {databases.get(database, database)}: {labels[key]}"
            reference = one.requests_per_second if one is not None and key != ONE.key else None
            if key == SERVE.key:
                speedup = ratio(result.requests_per_second, reference)
                met = None if speedup is None else speedup >= TARGET_RATIO and result.errors == 0
                target = Target(f">= {TARGET_RATIO}x, 0 errors", met)
            else:
                target = Target("0 errors", result.errors == 0)
            found.append(
                Figure(
                    PART,
                    name,
                    result.requests_per_second,
                    "req/s",
                    reference=labels[ONE.key] if reference is not None else "",
                    reference_value=reference,
                    target=target,
                    detail=_detail(result),
                )
            )
    return found


def measurements(measured: Sequence[Measured]) -> list[dict[str, Any]]:
    return [
        {
            "database": item.database,
            "service": item.service,
            "path": item.path,
            "server": item.server,
            "requests": item.result.requests,
            "seconds": item.result.seconds,
            "requests_per_second": item.result.requests_per_second,
            "p50_ms": 1000 * item.result.p50,
            "p99_ms": 1000 * item.result.p99,
            "non_2xx": item.result.non_2xx,
            "socket_errors": dict(item.result.socket_errors),
        }
        for item in measured
    ]
