"""The database scenario: PostgreSQL stops and comes back under writers.

Every service of the workspace runs on the cluster: users, agents and reporting under writers that
keep registering, queueing runs and posting orders, and every other service under a generic reader
(its `/health` and parameterless GETs, `harness.openapi`), so that a new service meets the outage too.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from starling_devtools import harness
from starling_devtools.faults.common import (
    CLIENT_TIMEOUT,
    REPORT_SCOPES,
    RUN_SCOPES,
    Options,
    no_unfinished_runs,
)
from starling_devtools.harness import bearer, logs
from starling_servers.postgres import SERVER_OPTIONS, find_binaries

PASSWORD = "faults-password-0123"
KNOWN = {"users", "agents", "reporting"}  # the services the writers know
RUN_TEXT = " ".join(f"Sentence {n} of a long text that the summarizer reads for a while." for n in range(300))


def squeeze(values: Sequence[int]) -> list[int]:
    """Consecutive repeats folded into one: [200, 200, 503, 200] -> [200, 503, 200]."""
    folded: list[int] = []
    for value in values:
        if not folded or folded[-1] != value:
            folded.append(value)
    return folded


@dataclass(frozen=True)
class PostgresControl:
    """Stops and starts the kit's throwaway cluster in place, as its owner (PostgreSQL refuses root)."""

    url: str
    data_dir: Path
    log: Path

    @property
    def port(self) -> int:
        port = urlsplit(self.url.replace("postgresql+asyncpg", "postgresql")).port
        assert port is not None
        return port

    def stop(self) -> None:
        # fast: roll back open transactions and close every connection, as a restart does
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k '' {SERVER_OPTIONS}"
        self._pg_ctl("-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def _pg_ctl(self, *args: str) -> None:
        owner = self.data_dir.stat()
        as_owner = os.geteuid() == 0 and owner.st_uid != 0
        subprocess.run(
            [str(find_binaries() / "pg_ctl"), "-D", str(self.data_dir), *args],
            check=True,
            capture_output=True,
            cwd="/",
            timeout=120,
            user=owner.st_uid if as_owner else None,
            group=owner.st_gid if as_owner else None,
        )


@dataclass
class Outage:
    """What the writers and the health monitor saw around the outage."""

    answers: harness.Recorder = field(default_factory=harness.Recorder)
    health: dict[str, list[int]] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    bad_503: list[str] = field(default_factory=list)  # 503s without a JSON detail or Retry-After
    after_recovery: Counter[str] = field(default_factory=Counter)  # 2xx once every /health was 200 again
    recovered: bool = False
    max_latency: float = 0.0
    miscounted: int = 0  # order batches whose `accepted` was not the number of (all new) orders sent


async def write_forever(
    outage: Outage, client: httpx.AsyncClient, urls: dict[str, str], index: int, token: str
) -> None:
    """One writer: a registration, a background run, an order batch, round and round."""
    sequence = 0
    while True:
        sequence += 1
        key = f"w{index:02d}-{sequence:05d}"
        kind = ("users", "agents", "reporting")[sequence % 3]
        if kind == "users":
            email = f"{key}@faults.example.com"
            body: dict[str, Any] = {"name": "Faults", "email": email, "password": PASSWORD}
            response = await outage.answers.request(
                client, "users.register", "POST", f"{urls['users']}/users", json=body
            )
        elif kind == "agents":
            body = {"agent_id": "summarizer", "input_text": f"{key}. {RUN_TEXT}", "background": True}
            response = await outage.answers.request(
                client,
                "agents.run_background",
                "POST",
                f"{urls['agents']}/api/v1/agents/run",
                json=body,
                headers=bearer(token),
            )
        else:
            orders = [order(f"{key}-{n}", n) for n in range(3)]
            response = await outage.answers.request(
                client,
                "reporting.orders",
                "POST",
                f"{urls['reporting']}/api/v1/orders",
                json={"orders": orders},
                headers=bearer(token),
            )
        if response is None:
            continue
        if response.status_code == 503:
            if not _good_503(response) and len(outage.bad_503) < 5:
                outage.bad_503.append(f"{kind}: {response.headers} {response.text[:100]}")
            continue
        if 200 <= response.status_code < 300:
            if outage.recovered:
                outage.after_recovery[kind] += 1
            if kind == "users":
                outage.registered.add(email)
            elif kind == "agents":
                outage.runs.add(response.json()["run_id"])
            else:
                # Every id is new, so a 202 must accept them all; the batch is stored or not at all.
                outage.orders.update(o["order_id"] for o in orders)
                if response.json().get("accepted") != len(orders):
                    outage.miscounted += 1


async def read_forever(
    outage: Outage, client: httpx.AsyncClient, operations: list[harness.Operation]
) -> None:
    """A service the writers do not know: its generic reads, round and round."""
    while True:
        for operation in operations:
            response = await outage.answers.request(
                client, operation.label, "GET", operation.url, headers=operation.headers
            )
            if response is not None and response.status_code == 503 and not _good_503(response):
                if len(outage.bad_503) < 5:
                    outage.bad_503.append(f"{operation.label}: {response.headers} {response.text[:100]}")
            elif response is not None and response.is_success and outage.recovered:
                outage.after_recovery[operation.label.split(".")[0]] += 1


def _good_503(response: httpx.Response) -> bool:
    try:
        detail = response.json().get("detail")
    except ValueError:
        return False
    return isinstance(detail, str) and bool(detail) and response.headers.get("retry-after", "").isdigit()


def order(order_id: str, number: int) -> dict[str, Any]:
    created = datetime(2026, 2, 1, tzinfo=UTC) + timedelta(minutes=number)
    item = {
        "product_id": f"p-{number % 7}",
        "title": f"Product {number % 7}",
        "quantity": 1 + number % 4,
        "unit_price": "2.50",
    }
    return {"order_id": order_id, "created_at": created.isoformat(), "items": [item]}


async def monitor_health(outage: Outage, client: httpx.AsyncClient, urls: dict[str, str]) -> None:
    while True:
        for name, url in urls.items():
            started = time.monotonic()
            try:
                status = (await client.get(f"{url}/health")).status_code
            except httpx.HTTPError:
                status = 0  # no answer: recorded, and it breaks the 200 -> 503 -> 200 sequence
            outage.max_latency = max(outage.max_latency, time.monotonic() - started)
            outage.health.setdefault(name, []).append(status)
        await asyncio.sleep(0.1)


def all_health(outage: Outage, status: int, count: int) -> bool:
    return len(outage.health) == count and all(seen[-1] == status for seen in outage.health.values())


async def database_outage(options: Options, directory: Path) -> list[harness.Check]:
    # One worker on long inputs: a backlog of runs is waiting when the database goes, so some runs
    # meet the outage inside the worker, not only at the door.
    settings = {"agents": {"STARLING_AGENTS_WORKERS": "1"}}
    with harness.run(directory, root=options.root, db="postgres", settings=settings) as stack:
        cluster = stack.databases.cluster
        assert cluster is not None
        control = PostgresControl(cluster.url, cluster.data_dir, directory / "postgres" / "postgres.log")
        outage, timeline = await _drive_outage(options, control, stack)
        stack.stop()  # the databases are read with the services gone, the cluster still up
        postponed = logs.occurrences(stack.logs.get("agents"), " postponed: ")
        checks = await _outage_checks(outage, timeline, dict(stack.databases.urls), postponed=postponed)
    return [*checks, logs.tracebacks_check(stack.logs)]


async def _drive_outage(
    options: Options, control: PostgresControl, stack: harness.Stack
) -> tuple[Outage, dict[str, float]]:
    outage = Outage()
    timeline: dict[str, float] = {}
    urls = stack.urls
    writing = urls.keys() >= KNOWN
    token = stack.environment.mint("faults-writer", [*RUN_SCOPES, *REPORT_SCOPES])
    with httpx.Client(timeout=10.0) as sync_client:
        others = {name: url for name, url in urls.items() if not (writing and name in KNOWN)}
        generic = harness.operations(
            sync_client, others, lambda scopes: stack.environment.mint("faults-reader", list(scopes))
        )
    async with harness.http_client(
        connections=options.writers * 3 + 6 + len(others), seconds=CLIENT_TIMEOUT
    ) as client:
        began = time.monotonic()
        tasks = [asyncio.create_task(monitor_health(outage, client, urls))]
        if writing:
            tasks += [
                asyncio.create_task(write_forever(outage, client, urls, i, token))
                for i in range(options.writers)
            ]
        for name in others:
            # its /health is the monitor's: a health report, not an error with a `detail`
            mine = [
                op for op in generic if op.label.startswith(f"{name}.") and op.url != f"{urls[name]}/health"
            ]
            tasks.append(asyncio.create_task(read_forever(outage, client, mine)))

        async def down() -> bool:
            return all_health(outage, 503, len(urls))

        async def up() -> bool:
            return all_health(outage, 200, len(urls))

        try:
            await asyncio.sleep(2.0)  # writes while everything is up
            await asyncio.to_thread(control.stop)
            timeline["stopped"] = time.monotonic() - began
            seen_down = await harness.wait_for(down, within=15)
            timeline["all 503"] = time.monotonic() - began if seen_down else -1
            await asyncio.sleep(options.outage)  # writes while the database is down
            await asyncio.to_thread(control.start)
            timeline["started"] = time.monotonic() - began
            outage.recovered = await harness.wait_for(up, within=30)
            timeline["all 200"] = time.monotonic() - began if outage.recovered else -1
            await asyncio.sleep(2.0)  # writes after the recovery
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        drained = not writing or await harness.wait_for(
            lambda: no_unfinished_runs(stack.databases.urls["agents"]), within=60, interval=0.2
        )
        timeline["drained"] = time.monotonic() - began if drained else -1
    return outage, timeline


async def _outage_checks(
    outage: Outage, timeline: dict[str, float], urls: dict[str, str], *, postponed: int
) -> list[harness.Check]:
    answers = outage.answers
    health = {name: squeeze(statuses) for name, statuses in outage.health.items()}
    statuses: Counter[int] = Counter()
    for (_, status), n in answers.statuses.items():
        statuses[status] += n
    latencies = [t for values in answers.latencies.values() for t in values]
    unavailable_by_service = {
        label: answers.count(label=label, statuses=lambda s: s == 503) for label in answers.latencies
    }
    stored_emails: set[str] = set()
    run_status: dict[str, str] = {}
    stored_orders: set[str] = set()
    if urls.keys() >= KNOWN:
        stored_emails = {
            row[0] for row in await harness.query(urls["users"], "SELECT email_normalized FROM users")
        }
        run_status = dict(await harness.query(urls["agents"], "SELECT run_id, status FROM runs"))
        stored_orders = {
            row[0] for row in await harness.query(urls["reporting"], "SELECT order_id FROM orders")
        }
    lost_users = {email.lower() for email in outage.registered} - stored_emails
    lost_runs = outage.runs - set(run_status)
    lost_orders = outage.orders - stored_orders
    unfinished = Counter(
        run_status[run] for run in outage.runs & set(run_status) if run_status[run] != "completed"
    )
    when = ", ".join(f"{name} at {seconds:.1f} s" for name, seconds in timeline.items())
    return [
        harness.check(
            "/health went 200 -> 503 -> 200",
            all(sequence == [200, 503, 200] for sequence in health.values()) and len(health) == len(urls),
            f"{ {name: '->'.join(map(str, seq)) for name, seq in health.items()} }; {when}",
        ),
        harness.check(
            "every write and read answered 2xx or 503, never 500",
            set(statuses) <= {200, 201, 202, 503} and all(unavailable_by_service.values()),
            f"{dict(sorted(statuses.items()))} over {answers.total} requests; "
            f"503s by operation {unavailable_by_service}",
        ),
        harness.check(
            "every 503 has a JSON detail and Retry-After",
            not outage.bad_503,
            f"{statuses.get(503, 0)} 503s, {len(outage.bad_503)} without {outage.bad_503[:2] or ''}".rstrip(),
        ),
        harness.check(
            f"no request hung (client timeout {CLIENT_TIMEOUT:.0f} s)",
            answers.failures() == 0,
            f"{answers.failures()} without an answer{f' {dict(answers.errors)}' if answers.errors else ''}; "
            "slowest write "
            f"{max(latencies, default=0) * 1000:.0f} ms, slowest /health {outage.max_latency * 1000:.0f} ms",
        ),
        harness.check(
            "writes accepted again after the recovery",
            outage.recovered and all(outage.after_recovery[name] > 0 for name in urls),
            f"{dict(outage.after_recovery)} 2xx after every /health was 200 again",
        ),
        harness.check(
            "no accepted write lost",
            not (lost_users or lost_runs or lost_orders or outage.miscounted),
            f"{len(outage.registered)} users, {len(outage.runs)} runs, {len(outage.orders)} orders accepted; "
            f"missing {len(lost_users)}, {len(lost_runs)}, {len(lost_orders)}; "
            f"{outage.miscounted} order batches miscounted",
        ),
        harness.check(
            "every accepted run finished",
            timeline.get("drained", -1) >= 0 and not unfinished,
            f"{len(outage.runs)} runs, not completed: {dict(unfinished) or 'none'}; "
            f"{postponed} worker attempts postponed by the outage",
        ),
    ]
