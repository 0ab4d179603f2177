"""`python -m starling_devtools.faults`: break things under the services and prove nothing is lost.

Three scenarios, each against real service processes (`--only` picks some):

- database: users, agents and reporting on a throwaway PostgreSQL cluster while writers keep
  registering users, queueing background runs and posting orders. The server is stopped
  (`pg_ctl stop -m fast`) and started again. Each `/health` must go 200 -> 503 -> 200; every request
  must be answered within the client's timeout, 2xx or 503 with a JSON `detail` (never a 500); every
  write answered 2xx must be in the database afterwards, and every accepted run must finish.
- agents: background runs queued on one worker, the process SIGKILLed while some are still queued or
  running, then started again on the same database: every accepted run must complete, once.
- upstream: a fake upstream orders API that drops the connection on some requests (before answering,
  or half-way through the body) while the reporting service extracts from it on an interval. The
  extraction must resume from its checkpoint (never read the stream again from an earlier point),
  store exactly the upstream's orders and units (no double counting, nothing skipped), move the
  checkpoint to the last page, and pick up orders appended to the upstream later.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from starling_devtools import load, services

SCENARIOS = ("database", "agents", "upstream")
PORTS = {
    "database": {"users": 19220, "agents": 19221, "reporting": 19222},
    "agents": {"agents": 19230},
    "upstream": {"upstream": 19240, "reporting": 19241},
}
PASSWORD = "faults-password-0123"
CLIENT_TIMEOUT = 5.0  # seconds: an answer later than this counts as a hang
PASSWORD_ENV = {
    "STARLING_USERS_PASSWORD_TIME_COST": "1",
    "STARLING_USERS_PASSWORD_MEMORY_COST": "8192",
    "STARLING_USERS_PASSWORD_PARALLELISM": "1",
}
RUN_SCOPES = ("agent:run", "agent:read", "agent:admin")
RUN_TEXT = " ".join(f"Sentence {n} of a long text that the summarizer reads for a while." for n in range(300))
REPORT_SCOPES = ("reports:read", "reports:write")


@dataclass(frozen=True)
class Options:
    only: tuple[str, ...]
    outage: float
    writers: int
    runs: int
    orders: int
    keep: bool


def squeeze(values: Sequence[int]) -> list[int]:
    """Consecutive repeats folded into one: [200, 200, 503, 200] -> [200, 503, 200]."""
    folded: list[int] = []
    for value in values:
        if not folded or folded[-1] != value:
            folded.append(value)
    return folded


def base_env(name: str, database_url: str) -> dict[str, str]:
    env = {
        "STARLING_ENV": "development",
        "STARLING_RATE_LIMIT": load.UNLIMITED_RATE,
        f"STARLING_{name.upper()}_DATABASE_URL": database_url,
    }
    return env | (PASSWORD_ENV if name == "users" else {})


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def running(specs: Sequence[services.Service], directory: Path) -> Iterator[dict[str, services.Running]]:
    """The services started with their logs under `directory`, healthy, and stopped when the block ends."""
    started: list[services.Running] = []
    try:
        for service in specs:
            started.append(load.start_logged(service, directory / f"{service.name}.log"))
        services.wait_healthy(started, timeout=60)
        yield {item.service.name: item for item in started}
    finally:
        services.stop(started)


def logs_check(directory: Path, names: Sequence[str]) -> load.Check:
    counts = {name: load.log_errors(directory / f"{name}.log") for name in names}
    return load.check(
        "no tracebacks in the service logs",
        not any(counts.values()),
        ", ".join(f"{name} {count}" for name, count in counts.items()),
    )


# --- database: PostgreSQL stops and comes back -----------------------------------------------------


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
        from starling_testkit.postgres import SERVER_OPTIONS

        options = f"-p {self.port} -h 127.0.0.1 -k '' {SERVER_OPTIONS}"
        self._pg_ctl("-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def _pg_ctl(self, *args: str) -> None:
        from starling_testkit.postgres import find_binaries

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

    answers: load.Recorder = field(default_factory=load.Recorder)
    health: dict[str, list[int]] = field(default_factory=dict)
    registered: set[str] = field(default_factory=set)
    runs: set[str] = field(default_factory=set)
    orders: set[str] = field(default_factory=set)
    bad_503: list[str] = field(default_factory=list)  # 503s without a JSON detail or Retry-After
    after_recovery: Counter[str] = field(default_factory=Counter)  # 2xx once every /health was 200 again
    recovered: bool = False
    max_latency: float = 0.0
    miscounted: int = 0  # order batches whose `accepted` was not the number of (all new) orders sent


async def write_forever(outage: Outage, client: httpx.AsyncClient, urls: dict[str, str], index: int) -> None:
    """One writer: a registration, a background run, an order batch, round and round."""
    token = load.mint_token(f"faults-writer-{index}", [*RUN_SCOPES, *REPORT_SCOPES])
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
                headers=auth(token),
            )
        else:
            orders = [order(f"{key}-{n}", n) for n in range(3)]
            response = await outage.answers.request(
                client,
                "reporting.orders",
                "POST",
                f"{urls['reporting']}/api/v1/orders",
                json={"orders": orders},
                headers=auth(token),
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


def all_health(outage: Outage, status: int) -> bool:
    return len(outage.health) == 3 and all(seen[-1] == status for seen in outage.health.values())


async def database_outage(options: Options, directory: Path) -> list[load.Check]:
    from starling_testkit import postgres

    names = ("users", "agents", "reporting")
    cluster_dir = directory / "postgres"
    cluster = postgres.ensure_cluster(cluster_dir)
    control = PostgresControl(cluster.url, cluster.data_dir, cluster_dir / "postgres.log")
    try:
        base = cluster.url.rsplit("/", 1)[0]
        urls = {name: f"{base}/faults_{name}" for name in names}
        await load.create_databases(cluster.url, [url.rsplit("/", 1)[1] for url in urls.values()])
        ports = PORTS["database"]
        # One worker on long inputs: a backlog of runs is waiting when the database goes, so some
        # runs meet the outage inside the worker, not only at the door.
        env = {name: base_env(name, urls[name]) for name in names}
        env["agents"]["STARLING_AGENTS_WORKERS"] = "1"
        specs = [services.Service(name, ports[name], env[name]) for name in names]
        with running(specs, directory) as started:
            outage, timeline = await _drive_outage(options, control, {n: r.url for n, r in started.items()})
        agents_log = (directory / "agents.log").read_text(errors="replace")
        checks = await _outage_checks(outage, timeline, urls, postponed=agents_log.count(" postponed: "))
    finally:
        postgres.stop_cluster(cluster_dir)
    return [*checks, logs_check(directory, names)]


async def _drive_outage(
    options: Options, control: PostgresControl, urls: dict[str, str]
) -> tuple[Outage, dict[str, float]]:
    outage = Outage()
    timeline: dict[str, float] = {}
    async with load.http_client(connections=options.writers * 3 + 6, seconds=CLIENT_TIMEOUT) as client:
        began = time.monotonic()
        tasks = [asyncio.create_task(monitor_health(outage, client, urls))]
        tasks += [asyncio.create_task(write_forever(outage, client, urls, i)) for i in range(options.writers)]

        async def down() -> bool:
            return all_health(outage, 503)

        async def up() -> bool:
            return all_health(outage, 200)

        try:
            await asyncio.sleep(2.0)  # writes while everything is up
            await asyncio.to_thread(control.stop)
            timeline["stopped"] = time.monotonic() - began
            seen_down = await load.wait_for(down, within=15)
            timeline["all 503"] = time.monotonic() - began if seen_down else -1
            await asyncio.sleep(options.outage)  # writes while the database is down
            await asyncio.to_thread(control.start)
            timeline["started"] = time.monotonic() - began
            outage.recovered = await load.wait_for(up, within=30)
            timeline["all 200"] = time.monotonic() - began if outage.recovered else -1
            await asyncio.sleep(2.0)  # writes after the recovery
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        token = load.mint_token("faults-admin", RUN_SCOPES)
        timeline["drained"] = (
            time.monotonic() - began
            if await load.wait_for(
                lambda: _no_unfinished_runs(client, urls["agents"], token), within=60, interval=0.2
            )
            else -1
        )
    return outage, timeline


async def _no_unfinished_runs(client: httpx.AsyncClient, agents_url: str, token: str) -> bool:
    for status in ("queued", "running"):
        response = await client.get(
            f"{agents_url}/api/v1/agents/runs", params={"status": status, "limit": 1}, headers=auth(token)
        )
        if response.status_code != 200 or response.json()["items"]:
            return False
    return True


async def _outage_checks(
    outage: Outage, timeline: dict[str, float], urls: dict[str, str], *, postponed: int
) -> list[load.Check]:
    answers = outage.answers
    health = {name: squeeze(statuses) for name, statuses in outage.health.items()}
    statuses: Counter[int] = Counter()
    for (_, status), n in answers.statuses.items():
        statuses[status] += n
    latencies = [t for values in answers.latencies.values() for t in values]
    unavailable_by_service = {
        label: answers.count(label=label, statuses=lambda s: s == 503) for label in answers.latencies
    }
    stored_emails = {row[0] for row in await load.query(urls["users"], "SELECT email_normalized FROM users")}
    run_rows = await load.query(urls["agents"], "SELECT run_id, status FROM runs")
    run_status = {row[0]: row[1] for row in run_rows}
    stored_orders = {row[0] for row in await load.query(urls["reporting"], "SELECT order_id FROM orders")}
    lost_users = {email.lower() for email in outage.registered} - stored_emails
    lost_runs = outage.runs - set(run_status)
    lost_orders = outage.orders - stored_orders
    unfinished = Counter(
        run_status[run] for run in outage.runs & set(run_status) if run_status[run] != "completed"
    )
    when = ", ".join(f"{name} at {seconds:.1f} s" for name, seconds in timeline.items())
    return [
        load.check(
            "/health went 200 -> 503 -> 200",
            all(sequence == [200, 503, 200] for sequence in health.values()) and len(health) == 3,
            f"{ {name: '->'.join(map(str, seq)) for name, seq in health.items()} }; {when}",
        ),
        load.check(
            "every write answered 2xx or 503, never 500",
            set(statuses) <= {201, 202, 503} and all(unavailable_by_service.values()),
            f"{dict(sorted(statuses.items()))} over {answers.total} writes; "
            f"503s by operation {unavailable_by_service}",
        ),
        load.check(
            "every 503 has a JSON detail and Retry-After",
            not outage.bad_503,
            f"{statuses.get(503, 0)} 503s, {len(outage.bad_503)} without {outage.bad_503[:2] or ''}".rstrip(),
        ),
        load.check(
            f"no request hung (client timeout {CLIENT_TIMEOUT:.0f} s)",
            answers.failures() == 0,
            f"{answers.failures()} without an answer{f' {dict(answers.errors)}' if answers.errors else ''}; "
            "slowest write "
            f"{max(latencies, default=0) * 1000:.0f} ms, slowest /health {outage.max_latency * 1000:.0f} ms",
        ),
        load.check(
            "writes accepted again after the recovery",
            outage.recovered
            and all(outage.after_recovery[kind] > 0 for kind in ("users", "agents", "reporting")),
            f"{dict(outage.after_recovery)} 2xx after every /health was 200 again",
        ),
        load.check(
            "no accepted write lost",
            not (lost_users or lost_runs or lost_orders or outage.miscounted),
            f"{len(outage.registered)} users, {len(outage.runs)} runs, {len(outage.orders)} orders accepted; "
            f"missing {len(lost_users)}, {len(lost_runs)}, {len(lost_orders)}; "
            f"{outage.miscounted} order batches miscounted",
        ),
        load.check(
            "every accepted run finished",
            timeline.get("drained", -1) >= 0 and not unfinished,
            f"{len(outage.runs)} runs, not completed: {dict(unfinished) or 'none'}; "
            f"{postponed} worker attempts postponed by the outage",
        ),
    ]


# --- agents: the process killed with runs queued ---------------------------------------------------


def long_text(rng: random.Random, sentences: int) -> str:
    words = ["agents", "summarize", "long", "texts", "for", "users", "while", "queued", "runs", "wait"]
    return " ".join(" ".join(rng.choices(words, k=12)).capitalize() + "." for _ in range(sentences))


async def agents_killed(options: Options, directory: Path) -> list[load.Check]:
    url = f"sqlite+aiosqlite:///{directory / 'agents-kill.db'}"
    env = base_env("agents", url) | {"STARLING_AGENTS_WORKERS": "1"}
    service = services.Service("agents", PORTS["agents"]["agents"], env)
    log = directory / "agents.log"
    token = load.mint_token("faults-agents", RUN_SCOPES)
    rng = random.Random(7)  # noqa: S311 - reproducible input, not a secret
    texts = [long_text(rng, 400) for _ in range(8)]
    accepted: set[str] = set()
    recorder = load.Recorder()

    first = load.start_logged(service, log)
    try:
        services.wait_healthy([first], timeout=60)
        async with load.http_client(connections=16, seconds=30.0) as client:
            semaphore = asyncio.Semaphore(16)

            async def submit(number: int) -> None:
                body = {
                    "agent_id": "summarizer",
                    "input_text": texts[number % len(texts)],
                    "background": True,
                }
                async with semaphore:
                    response = await recorder.request(
                        client,
                        "agents.run_background",
                        "POST",
                        f"{service.url}/api/v1/agents/run",
                        json=body,
                        headers=auth(token),
                    )
                if response is not None and response.status_code == 202:
                    accepted.add(response.json()["run_id"])

            await asyncio.gather(*(submit(number) for number in range(options.runs)))
    finally:
        services.kill(first)
    at_kill = Counter(row[0] for row in await load.query(url, "SELECT status FROM runs"))

    second = load.start_logged(service, log)
    try:
        services.wait_healthy([second], timeout=60)
        began = time.monotonic()
        drained = await load.wait_for(lambda: _none_unfinished_in(url), within=120, interval=0.2)
        took = time.monotonic() - began
    finally:
        services.stop([second])
    rows = await load.query(url, "SELECT run_id, status FROM runs")
    final = Counter(row[1] for row in rows)
    unfinished_at_kill = at_kill.get("queued", 0) + at_kill.get("running", 0)
    return [
        load.check(
            "runs accepted before the kill",
            len(accepted) == options.runs,
            f"{len(accepted)} of {options.runs} answered 202 {dict(recorder.statuses)}",
        ),
        load.check(
            "the kill left runs unfinished",
            unfinished_at_kill > 0,
            f"at SIGKILL: {dict(at_kill)}"
            + ("" if unfinished_at_kill else " (nothing to recover: raise --runs)"),
        ),
        load.check(
            "every run finished after the restart, once",
            drained
            and {row[0] for row in rows} == accepted
            and len(rows) == len(accepted)
            and final == {"completed": len(accepted)},
            f"{dict(final)} {took:.1f} s after the restart was healthy; "
            f"{len(rows)} rows for {len(accepted)} accepted",
        ),
        logs_check(directory, ["agents"]),
    ]


async def _none_unfinished_in(url: str) -> bool:
    rows = await load.query(url, "SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")
    return bool(rows[0][0] == 0)


# --- upstream: an orders API that drops connections ------------------------------------------------


@dataclass
class FakeUpstream:
    """`GET /orders?cursor=&limit=` over raw asyncio streams, dropping every `drop_every`-th request.

    Drops alternate between closing before any answer (the client's transport retries that) and
    closing half-way through the body (the extraction run fails and the next one resumes).
    """

    orders: list[dict[str, Any]]
    drop_every: int = 3
    requests: list[tuple[int, str]] = field(default_factory=list)  # (offset asked, what happened)

    def page(self, cursor: str | None, limit: int) -> dict[str, Any]:
        start = offset_of(cursor)
        end = start + max(1, limit)
        return {
            "items": self.orders[start:end],
            "next_cursor": f"o-{end}" if end < len(self.orders) else None,
        }

    def fate(self) -> str:
        number = len(self.requests) + 1
        if number % self.drop_every:
            return "served"
        return "dropped before answering" if (number // self.drop_every) % 2 else "dropped mid-body"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                target = head.split(b" ", 2)[1].decode()
                parts = urlsplit(target)
                if parts.path != "/orders":
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                query = parse_qs(parts.query)
                cursor = query.get("cursor", [None])[0]
                limit = int(query.get("limit", ["100"])[0])
                fate = self.fate()
                self.requests.append((offset_of(cursor), fate))
                if fate == "dropped before answering":
                    return
                body = json.dumps(self.page(cursor, limit)).encode()
                head_out = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                if fate == "dropped mid-body":
                    writer.write(head_out.encode() + body[: len(body) // 2])
                    await writer.drain()
                    return
                writer.write(head_out.encode() + body)
                await writer.drain()
        finally:
            writer.close()


def offset_of(cursor: str | None) -> int:
    return int(cursor[2:]) if cursor and cursor.startswith("o-") and cursor[2:].isdigit() else 0


def upstream_orders(first: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    created = datetime(2026, 3, 1, tzinfo=UTC)
    orders = []
    for number in range(first, first + count):
        items = [
            {
                "product_id": f"u-{product:02d}",
                "title": f"Upstream {product:02d}",
                "quantity": rng.randint(1, 9),
                "unit_price": "1.25",
            }
            for product in rng.sample(range(40), rng.randint(1, 3))
        ]
        orders.append(
            {
                "order_id": f"up-{number:05d}",
                "created_at": (created + timedelta(minutes=number)).isoformat(),
                "items": items,
            }
        )
    return orders


def upstream_units(orders: Sequence[dict[str, Any]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for upstream_order in orders:
        for item in upstream_order["items"]:
            total[item["product_id"]] += item["quantity"]
    return dict(total)


@contextlib.asynccontextmanager
async def serving(upstream: FakeUpstream, port: int) -> AsyncIterator[str]:
    """`upstream` on loopback at `port` (0: any free port); yields its base URL."""
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", port)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def upstream_drops(options: Options, directory: Path) -> list[load.Check]:
    rng = random.Random(11)  # noqa: S311 - reproducible orders, not a secret
    page_size = 64
    upstream = FakeUpstream(upstream_orders(0, options.orders, rng))
    url = f"sqlite+aiosqlite:///{directory / 'reporting-upstream.db'}"
    ports = PORTS["upstream"]
    async with serving(upstream, ports["upstream"]) as upstream_url:
        env = base_env("reporting", url) | {
            "STARLING_REPORTING_UPSTREAM_URL": upstream_url,
            "STARLING_REPORTING_UPSTREAM_PAGE_SIZE": str(page_size),
            "STARLING_REPORTING_EXTRACTION_INTERVAL": "0.2",
        }
        service = services.Service("reporting", ports["reporting"], env)
        item = load.start_logged(service, directory / "reporting.log")
        try:
            await asyncio.to_thread(services.wait_healthy, [item], timeout=60)
            first = await _wait_extracted(url, upstream)
            appended = upstream_orders(options.orders, 150, rng)
            upstream.orders.extend(appended)  # fills the last page and adds new ones
            second = await _wait_extracted(url, upstream)
            token = load.mint_token("faults-reports", REPORT_SCOPES)
            async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
                ranking = await client.get(
                    f"{service.url}/top-products", params={"count": 100}, headers=auth(token)
                )
        finally:
            await asyncio.to_thread(services.stop, [item])
    stored_ids = {row[0] for row in await load.query(url, "SELECT order_id FROM orders")}
    stored_units = {
        row[0]: int(row[1])
        for row in await load.query(
            url, "SELECT product_id, SUM(quantity) FROM order_items GROUP BY product_id"
        )
    }
    checkpoint = (await load.query(url, "SELECT cursor FROM extraction_checkpoints"))[0][0]
    expected_ids = {o["order_id"] for o in upstream.orders}
    expected_units = upstream_units(upstream.orders)
    api_units = (
        {row["product_id"]: row["cnt_bought"] for row in ranking.json()} if ranking.status_code == 200 else {}
    )
    offsets = [offset for offset, _ in upstream.requests]
    backwards = sum(later < earlier for earlier, later in itertools.pairwise(offsets))
    fates = Counter(fate for _, fate in upstream.requests)
    last_page = f"o-{((len(upstream.orders) - 1) // page_size) * page_size}"
    return [
        load.check(
            "the upstream dropped connections both ways",
            fates["dropped mid-body"] > 0 and fates["dropped before answering"] > 0,
            f"{len(upstream.requests)} requests: {dict(fates)}",
        ),
        load.check(
            "extraction resumed from its checkpoint, never from an earlier point",
            backwards == 0,
            f"{backwards} requests went back in the stream; complete after {first:.1f} s, "
            f"appended orders after {second:.1f} s more",
        ),
        load.check(
            "stored orders = the upstream's, each once",
            stored_ids == expected_ids,
            f"{len(stored_ids)} stored of {len(expected_ids)} ({options.orders} + 150 appended); "
            f"missing {len(expected_ids - stored_ids)}, extra {len(stored_ids - expected_ids)}",
        ),
        load.check(
            "units per product: database = /top-products = upstream",
            stored_units == expected_units == api_units,
            f"{sum(expected_units.values())} units over {len(expected_units)} products upstream, "
            f"{sum(stored_units.values())} stored, {sum(api_units.values())} in /top-products",
        ),
        load.check(
            "the checkpoint advanced to the last page",
            checkpoint == last_page,
            f"checkpoint {checkpoint!r}, last page {last_page!r}",
        ),
        logs_check(directory, ["reporting"]),
    ]


async def _wait_extracted(url: str, upstream: FakeUpstream) -> float:
    """Seconds until the reporting database holds every upstream order (-1.0 if it never does)."""
    began = time.monotonic()
    expected = len(upstream.orders)

    async def complete() -> bool:
        with contextlib.suppress(Exception):  # the tables appear with the service's migrations
            rows = await load.query(url, "SELECT count(*) FROM orders")
            return bool(rows[0][0] == expected)
        return False

    done = await load.wait_for(complete, within=120, interval=0.2)
    return time.monotonic() - began if done else -1.0


# --- the run ---------------------------------------------------------------------------------------


def run(options: Options) -> int:
    checks: list[load.Check] = []
    reports = []
    scenarios = {"database": database_outage, "agents": agents_killed, "upstream": upstream_drops}
    with load.work_dir("starling-faults-", keep=options.keep) as directory:
        for name in options.only:
            scenario_dir = directory / name
            scenario_dir.mkdir()
            try:
                found = asyncio.run(scenarios[name](options, scenario_dir))
            except Exception as exc:  # a scenario that cannot run is a failed check, not a traceback
                found = [load.check(f"{name} scenario ran", False, f"{type(exc).__name__}: {exc}")]
            checks += found
            reports.append(load.render(f"faults: {name}", found))
    print("\n".join(reports))
    print(f"{sum(c.ok for c in checks)}/{len(checks)} checks passed in all")
    return load.exit_code(checks)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m starling_devtools.faults", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--only", action="append", choices=SCENARIOS, help="run this scenario (repeatable; default all)"
    )
    parser.add_argument(
        "--outage", type=float, default=3.0, help="seconds the database stays down (default 3)"
    )
    parser.add_argument(
        "--writers", type=int, default=6, help="concurrent writers during the outage (default 6)"
    )
    parser.add_argument(
        "--runs", type=int, default=200, help="background runs queued before the kill (default 200)"
    )
    parser.add_argument(
        "--orders", type=int, default=1000, help="orders the upstream starts with (default 1000)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    args = parser.parse_args(argv)
    return Options(
        only=tuple(args.only or SCENARIOS),
        outage=args.outage,
        writers=args.writers,
        runs=args.runs,
        orders=args.orders,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
