"""`python -m starling_devtools.fuzz`: schemathesis against every service's `/openapi.json`, over real HTTP.

The three services run as uvicorn processes, each on its own fresh database (SQLite files, or a
throwaway PostgreSQL cluster with `--db postgres`), with a rate limit high enough that a 429 never
hides an answer. The data a fuzzer cannot make up is put there first: demo agents and orders through
the services' own APIs, and a small upstream orders API for the reporting service to extract from, so
that the 503s the contract reserves for "no data yet" and "no upstream" are not what gets tested.

Each service is then fuzzed as three callers: an administrator holding every scope (every phase,
stateful included), a plain user and an anonymous caller (fewer examples: they mostly meet 401 and
403). The run fails on any finding of the checks below, and prints each one with a curl command
that reproduces it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_devtools import load, seed, services

SERVICES = ("users", "agents", "reporting")
CALLERS = ("admin", "user", "anonymous")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
FIRST_PORT = 19310  # users, agents, reporting, then the upstream orders API
ADMIN_EMAIL = "fuzz-admin@example.com"
USER_EMAIL = "fuzz-user@example.com"
PASSWORD = "fuzz-password-0123"
UPSTREAM_ORDERS = 12
RUN_TIMEOUT = 900.0


@dataclass(frozen=True)
class Pass:
    """One schemathesis run: a service, fuzzed as one caller."""

    service: str
    caller: str
    max_examples: int
    phases: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    """What one pass found, read from schemathesis' JSON report."""

    exit_code: int
    generated: int
    failures: list[str]
    errors: list[str]
    warnings: list[str]

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.failures and not self.errors


def plan(names: Sequence[str], callers: Sequence[str], max_examples: int) -> list[Pass]:
    """The passes to run: the administrator gets every phase, the others a smaller share."""
    passes = []
    # The administrator's stateful phase deletes users, the plain user among them: it goes last.
    ordered = sorted(callers, key=lambda caller: caller == "admin")
    for name in names:
        for caller in ordered:
            if caller == "admin":
                passes.append(
                    Pass(name, caller, max_examples, ("examples", "coverage", "fuzzing", "stateful"))
                )
            else:
                passes.append(
                    Pass(name, caller, max(3, max_examples // 5), ("examples", "coverage", "fuzzing"))
                )
    return passes


def schemathesis_command(
    item: Pass,
    url: str,
    *,
    token: str | None,
    seed_value: int,
    workers: int,
    report: Path,
    python: str = sys.executable,
) -> list[str]:
    command = [
        python, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--max-examples", str(item.max_examples),
        "--phases", ",".join(item.phases),
        "--seed", str(seed_value),
        "--workers", str(workers),
        "--request-timeout", "30",
        # The examples a run finds are kept in its report and curl commands, not in a database that
        # would make the next run differ from its seed.
        "--generation-database", "none",
        "--report", "json",
        "--report-json-path", str(report),
        "--no-color",
    ]  # fmt: skip
    if token is not None:
        command += ["--header", f"Authorization: Bearer {token}"]
    return command


def read_report(data: Mapping[str, Any], *, authenticated: bool = True) -> Outcome:
    failures = [
        f"{failure['code']} {failure['title']} ({failure['count']}): {', '.join(failure['operations'])}"
        for failure in data.get("failures", [])
    ]
    errors = [_describe_error(error) for error in data.get("errors", [])]
    warnings = [
        f"{kind}: {', '.join(operations)}"
        for kind, operations in data.get("warnings", {}).items()
        # Answers of only 401/403 are the point of fuzzing as a caller without the scopes.
        if operations and (authenticated or kind != "missing_auth")
    ]
    return Outcome(
        exit_code=int(data.get("exit_code", 1)),
        generated=int(data.get("test_cases", {}).get("generated", 0)),
        failures=failures,
        errors=errors,
        warnings=warnings,
    )


def _describe_error(error: Any) -> str:
    if isinstance(error, Mapping):
        where = error.get("label") or error.get("operation") or ""
        what = error.get("title") or error.get("message") or error.get("type") or json.dumps(error)[:200]
        return f"{where}: {what}" if where else str(what)
    return str(error)


def summary(results: Sequence[tuple[Pass, Outcome]], seed_value: int) -> str:
    lines = [f"\nfuzz summary (seed {seed_value}; rerun with --seed {seed_value}):"]
    for item, outcome in results:
        verdict = "ok" if outcome.ok else "FAILED"
        lines.append(f"  {item.service:<10} {item.caller:<10} {outcome.generated:>6} cases  {verdict}")
        lines += [f"      failure: {text}" for text in outcome.failures]
        lines += [f"      error:   {text}" for text in outcome.errors]
        if outcome.exit_code != 0 and not outcome.failures and not outcome.errors:
            lines.append(f"      schemathesis exited with code {outcome.exit_code}")
        lines += [f"      warning: {text}" for text in outcome.warnings]
    failed = sum(not outcome.ok for _, outcome in results)
    lines.append(f"{len(results) - failed} of {len(results)} passes clean")
    return "\n".join(lines)


# --- the upstream orders API the reporting service extracts from --------------------------------


def upstream_orders(count: int = UPSTREAM_ORDERS) -> list[dict[str, Any]]:
    # Ids of their own, so extraction stores new orders rather than replays of the seeded ones.
    return [
        {**order, "order_id": f"upstream-{index:04d}"} for index, order in enumerate(seed.demo_orders(count))
    ]


def orders_page(orders: Sequence[Mapping[str, Any]], cursor: str | None, limit: int) -> dict[str, Any]:
    """The contract's page: `items` from the opaque `cursor` on, and the cursor of the next page or null."""
    start = int(cursor) if cursor and cursor.isdigit() else 0
    end = start + max(1, limit)
    return {"items": list(orders[start:end]), "next_cursor": str(end) if end < len(orders) else None}


def upstream_app(orders: Sequence[Mapping[str, Any]]) -> Starlette:
    async def list_orders(request: Request) -> JSONResponse:
        limit = request.query_params.get("limit", "100")
        page = orders_page(orders, request.query_params.get("cursor"), int(limit) if limit.isdigit() else 100)
        return JSONResponse(page)

    return Starlette(routes=[Route("/orders", list_orders)])


@contextlib.contextmanager
def serve_in_thread(app: Starlette, port: int) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="fuzz-upstream", daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the upstream orders API could not start on port {port}")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


# --- databases ---------------------------------------------------------------------------------------


@contextlib.contextmanager
def databases(kind: str, names: Sequence[str], data_dir: Path) -> Iterator[dict[str, str]]:
    """Each service's database URL environment: SQLite files under `data_dir`, or PostgreSQL databases."""
    if kind == "sqlite":
        env: dict[str, str] = {}
        for name in names:
            env |= services.sqlite_env(name, data_dir)
        yield env
        return
    # The test kit knows how to start a throwaway cluster from the machine's binaries.
    from starling_servers import postgres

    # The cluster runs as an unprivileged user when we are root; it must reach its directory through ours.
    data_dir.chmod(data_dir.stat().st_mode | 0o711)
    cluster = postgres.ensure_cluster(data_dir / "postgres")
    try:
        asyncio.run(load.create_databases(cluster.url, [f"fuzz_{name}" for name in names]))
        base = cluster.url.rsplit("/", 1)[0]
        yield {f"STARLING_{name.upper()}_DATABASE_URL": f"{base}/fuzz_{name}" for name in names}
    finally:
        postgres.stop_cluster(data_dir / "postgres")


# --- the run -----------------------------------------------------------------------------------------


def service_env(
    name: str, *, database_env: Mapping[str, str], ports: Mapping[str, int], upstream: str
) -> dict[str, str]:
    env = {
        "STARLING_ENV": "development",
        "STARLING_RATE_LIMIT": services.UNLIMITED_RATE,
        **{key: value for key, value in database_env.items() if key.startswith(f"STARLING_{name.upper()}_")},
    }
    if name == "users":
        env |= {
            "STARLING_USERS_ADMIN_EMAIL": ADMIN_EMAIL,
            "STARLING_USERS_ADMIN_PASSWORD": PASSWORD,
            # Argon2id at its cheapest: the fuzzer registers and logs in hundreds of times.
            "STARLING_USERS_PASSWORD_TIME_COST": "1",
            "STARLING_USERS_PASSWORD_MEMORY_COST": "1024",
            "STARLING_USERS_PASSWORD_PARALLELISM": "1",
        }
    if name == "reporting":
        env |= {
            "STARLING_REPORTING_AGENTS_URL": f"http://127.0.0.1:{ports['agents']}",
            "STARLING_REPORTING_UPSTREAM_URL": upstream,
        }
    return env


def caller_tokens(users_url: str) -> dict[str, str | None]:
    with httpx.Client(timeout=10.0) as client:
        admin = seed.token(users_url, ADMIN_EMAIL, PASSWORD, client=client)
        registered = client.post(
            f"{users_url}/users", json={"name": "Fuzz", "email": USER_EMAIL, "password": PASSWORD}
        )
        if registered.status_code not in (201, 409):
            registered.raise_for_status()
        user = seed.token(users_url, USER_EMAIL, PASSWORD, client=client)
    return {"admin": admin, "user": user, "anonymous": None}


def run_pass(
    item: Pass, url: str, token: str | None, *, seed_value: int, workers: int, work_dir: Path
) -> Outcome:
    report = work_dir / f"{item.service}-{item.caller}.json"
    command = schemathesis_command(
        item, url, token=token, seed_value=seed_value, workers=workers, report=report
    )
    print(f"\n=== {item.service} as {item.caller}: {url}/openapi.json", flush=True)
    try:
        # schemathesis keeps replay files under ./.schemathesis: they belong to the run's directory.
        completed = subprocess.run(command, cwd=work_dir, timeout=RUN_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        return Outcome(1, 0, [], [f"schemathesis did not finish within {RUN_TIMEOUT:.0f} s"], [])
    if not report.exists():
        return Outcome(completed.returncode or 1, 0, [], ["schemathesis wrote no report"], [])
    outcome = read_report(json.loads(report.read_text()), authenticated=item.caller == "admin")
    return dataclasses.replace(outcome, exit_code=completed.returncode or outcome.exit_code)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m starling_devtools.fuzz", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--service", action="append", choices=SERVICES, help="fuzz only this service (repeatable)"
    )
    parser.add_argument(
        "--caller", action="append", choices=CALLERS, help="fuzz only as this caller (repeatable)"
    )
    parser.add_argument(
        # short in the README's test command; the nightly workflow runs 200
        "--max-examples",
        type=int,
        default=15,
        help="examples per operation for the admin pass (15)",
    )
    parser.add_argument("--seed", type=int, help="schemathesis seed (random, and printed, when absent)")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers per pass")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--port", type=int, default=FIRST_PORT, help="first of four consecutive ports")
    parser.add_argument(
        "--keep", type=Path, help="keep reports, replay files and databases in this directory"
    )
    args = parser.parse_args(argv)
    if args.max_examples < 1 or args.workers < 1:
        parser.error("--max-examples and --workers must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.service or list(SERVICES)
    callers = args.caller or list(CALLERS)
    seed_value = args.seed if args.seed is not None else secrets.randbelow(2**32)
    ports = {name: args.port + index for index, name in enumerate(SERVICES)}

    with contextlib.ExitStack() as stack:
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
            work_dir = args.keep.resolve()
        else:
            work_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="starling-fuzz-")))
        upstream = stack.enter_context(serve_in_thread(upstream_app(upstream_orders()), args.port + 3))
        database_env = stack.enter_context(databases(args.db, SERVICES, work_dir))
        # Every service runs whichever are fuzzed: tokens come from users, agent usage from agents.
        started: list[services.Running] = []
        stack.callback(services.stop, started)
        for name in SERVICES:
            env = service_env(name, database_env=database_env, ports=ports, upstream=upstream)
            service = services.Service(name, ports[name], env)
            quiet = [*services.command(service), "--no-access-log", "--log-level", "warning"]
            started.append(services.start(service, argv=quiet))
        services.wait_healthy(started, timeout=60)
        urls = {item.service.name: item.url for item in started}
        tokens = caller_tokens(urls["users"])
        seeded = seed.seed(
            users_url=urls["users"],
            agents_url=urls["agents"],
            reporting_url=urls["reporting"],
            email=ADMIN_EMAIL,
            password=PASSWORD,
        )
        print(
            f"up on {args.db}; agents {seeded.agents_created}, orders {seeded.orders_accepted}",
            flush=True,
        )

        results = []
        for item in plan(names, callers, args.max_examples):
            outcome = run_pass(
                item,
                urls[item.service],
                tokens[item.caller],
                seed_value=seed_value,
                workers=args.workers,
                work_dir=work_dir,
            )
            dead = [running.service.name for running in started if running.process.poll() is not None]
            if dead:
                outcome = dataclasses.replace(outcome, errors=[*outcome.errors, f"exited: {', '.join(dead)}"])
            results.append((item, outcome))
            if dead:
                break

    print(summary(results, seed_value), flush=True)
    if args.keep is not None:
        print(f"reports and replay files kept in {work_dir} (replay from there: st replay <id>)")
    return 0 if results and all(outcome.ok for _, outcome in results) else 1


if __name__ == "__main__":
    sys.exit(main())
