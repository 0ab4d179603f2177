"""`python -m starling_devtools.soak`: all three services under a bounded load, then the books checked.

`--callers` asyncio tasks share one httpx client for `--seconds` and each, in a loop, registers
users (and re-registers taken addresses, which must be 409), logs in, runs agents now and in the
background, posts order batches (new ones, replays of batches already accepted, and batches half old
and half new) and reads. Every accepted write goes into a ledger. Afterwards the background runs are
waited for, the services stopped, and their databases read directly: each accepted write must be
there exactly once, and nothing else. Nothing may answer 5xx or go unanswered, every ingest answer must
count exactly the orders that were new, no service's memory may grow past the stated bound between
the end of the warm-up and the end of the load, and no service's log may hold a password, a password
hash or any token the run was given.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from starling_devtools import load, services

NAMES = ("users", "agents", "reporting")
PORTS = {"users": 19210, "agents": 19211, "reporting": 19212}
ADMIN_EMAIL = "soak-admin@example.com"
PASSWORD = "soak-password-0123"
# Argon2id at low cost: the soak is about the services' books and memory, not about hashing speed,
# and the default parameters (0.3 s of both cores per hash) would make registration all it measures.
PASSWORD_ENV = {
    "STARLING_USERS_PASSWORD_TIME_COST": "1",
    "STARLING_USERS_PASSWORD_MEMORY_COST": "8192",
    "STARLING_USERS_PASSWORD_PARALLELISM": "1",
}
PRODUCTS = [(f"p-{number:02d}", f"Product {number:02d}") for number in range(30)]
WORDS = [
    *("agents", "summarize", "text", "for", "users", "and", "classify", "the", "great", "terrible"),
    *("reviews", "they", "write", "while", "orders", "arrive", "in", "batches", "reports", "rank"),
    *("products", "by", "units", "bought", "every", "morning", "good", "bad", "okay", "love"),
]
ORDER_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

# What each operation may answer; anything else fails the run.
EXPECTED: dict[str, set[int]] = {
    "users.register": {201},
    "users.register_taken": {409},
    "users.login": {200},
    "users.me": {200},
    "agents.run": {200},
    "agents.run_background": {202},
    "agents.list_runs": {200},
    "reporting.orders_new": {202},
    "reporting.orders_replay": {202},
    "reporting.orders_mixed": {202},
    "reporting.top_products": {200},
    "reporting.agent_usage": {200},
}
# How often each action is picked, relative to the others.
WEIGHTS = {
    "register": 12,
    "register_taken": 3,
    "login": 4,
    "run": 18,
    "run_background": 15,
    "orders_new": 18,
    "orders_replay": 8,
    "orders_mixed": 6,
    "read": 16,
}


@dataclass
class Ledger:
    """What the services accepted, by their own answers; the databases must hold exactly this."""

    registered: set[str] = field(default_factory=set)
    sync_runs: dict[str, str] = field(default_factory=dict)  # run id -> status answered
    background_runs: set[str] = field(default_factory=set)
    # order id -> its units per product, for every order some answer counted as accepted
    orders: dict[str, Counter[str]] = field(default_factory=dict)
    # orders of batches that got no answer: stored or not, nobody knows
    uncertain_orders: set[str] = field(default_factory=set)
    batches: Counter[str] = field(default_factory=Counter)
    accepted: int = 0
    duplicates: int = 0
    replayed: int = 0  # orders sent again after an answer had counted them
    mismatches: list[str] = field(default_factory=list)
    # batches whose every order is accepted: what replays are drawn from
    settled_batches: list[list[dict[str, Any]]] = field(default_factory=list)

    def record_batch(self, kind: str, batch: Sequence[dict[str, Any]], answer: dict[str, Any]) -> None:
        """Book one 202: every order not accepted before must be `accepted`, every other a duplicate."""
        known = sum(order["order_id"] in self.orders for order in batch)
        expected = {"accepted": len(batch) - known, "duplicates": known}
        got = {"accepted": answer.get("accepted"), "duplicates": answer.get("duplicates")}
        if got != expected and len(self.mismatches) < 20:
            self.mismatches.append(f"{kind}: expected {expected}, answered {got}")
        self.batches[kind] += 1
        self.accepted += int(answer.get("accepted") or 0)
        self.duplicates += int(answer.get("duplicates") or 0)
        self.replayed += known
        for order in batch:
            self.orders.setdefault(order["order_id"], units(order))
        self.settled_batches.append(list(batch))

    def units_by_product(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for order_units in self.orders.values():
            total.update(order_units)
        return total

    @property
    def runs(self) -> set[str]:
        return set(self.sync_runs) | self.background_runs


def issued(answer: dict[str, Any]) -> set[str]:
    """The tokens in a login's answer (the access token, and a refresh token where there is one)."""
    return {value for key, value in answer.items() if key.endswith("token") and isinstance(value, str)}


def units(order: dict[str, Any]) -> Counter[str]:
    counted: Counter[str] = Counter()
    for item in order["items"]:
        counted[item["product_id"]] += int(item["quantity"])
    return counted


def make_order(rng: random.Random, order_id: str) -> dict[str, Any]:
    items = []
    for product_id, title in rng.sample(PRODUCTS, rng.randint(1, 3)):
        items.append(
            {
                "product_id": product_id,
                "title": title,
                "quantity": rng.randint(1, 5),
                "unit_price": f"{rng.randint(100, 9999) / 100:.2f}",
            }
        )
    created = ORDER_EPOCH + timedelta(minutes=rng.randint(0, 60 * 24 * 30))
    return {"order_id": order_id, "created_at": created.isoformat(), "items": items}


def make_text(rng: random.Random) -> str:
    sentences = []
    for _ in range(rng.randint(3, 12)):
        words = rng.choices(WORDS, k=rng.randint(5, 14))
        sentences.append(" ".join(words).capitalize() + ".")
    return " ".join(sentences)


# --- the callers -----------------------------------------------------------------------------------


@dataclass
class Soak:
    client: httpx.AsyncClient
    urls: dict[str, str]
    admin_token: str
    recorder: load.Recorder = field(default_factory=load.Recorder)
    ledger: Ledger = field(default_factory=Ledger)
    user_tokens: dict[int, str] = field(default_factory=dict)
    sequence: Counter[int] = field(default_factory=Counter)
    emails: list[str] = field(default_factory=list)  # the registered ones, to draw from
    elapsed: float = 0.0
    top: dict[str, int] = field(default_factory=dict)  # /top-products after the load
    # every token the services issued and every password sent: none may appear in their logs
    secrets: set[str] = field(default_factory=lambda: {PASSWORD})

    def next_id(self, caller: int, kind: str) -> str:
        # Unique across callers and runs of the same callers: caller index plus its own counter.
        self.sequence[caller] += 1
        return f"{kind}-{caller:03d}-{self.sequence[caller]:06d}"

    def auth(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    async def post(
        self, label: str, service: str, path: str, token: str | None, body: Any
    ) -> httpx.Response | None:
        headers = self.auth(token) if token else {}
        return await self.recorder.request(
            self.client, label, "POST", f"{self.urls[service]}{path}", json=body, headers=headers
        )

    def registered(self, email: str) -> None:
        self.ledger.registered.add(email)
        self.emails.append(email)

    # each action: one request (two for a caller's first login), booked in the ledger when accepted

    async def register(self, caller: int, rng: random.Random) -> None:
        email = f"{self.next_id(caller, 'user')}@soak.example.com"
        body = {"name": f"Soak {caller}", "email": email, "password": PASSWORD}
        response = await self.post("users.register", "users", "/users", None, body)
        if response is not None and response.status_code == 201:
            self.registered(email)

    async def register_taken(self, caller: int, rng: random.Random) -> None:
        if not self.emails:
            await self.register(caller, rng)
            return
        # The same address in other letters: uniqueness is case-insensitive.
        body = {"name": "Again", "email": rng.choice(self.emails).upper(), "password": PASSWORD}
        await self.post("users.register_taken", "users", "/users", None, body)

    async def login(self, caller: int, rng: random.Random) -> None:
        if caller in self.user_tokens:
            email = rng.choice(self.emails)
        else:
            email = f"{self.next_id(caller, 'user')}@soak.example.com"
            body = {"name": f"Soak {caller}", "email": email, "password": PASSWORD}
            created = await self.post("users.register", "users", "/users", None, body)
            if created is None or created.status_code != 201:
                return
            self.registered(email)
        response = await self.post(
            "users.login", "users", "/auth/token", None, {"email": email, "password": PASSWORD}
        )
        if response is not None and response.status_code == 200:
            self.secrets.update(issued(response.json()))
            self.user_tokens.setdefault(caller, response.json()["access_token"])

    async def run(self, caller: int, rng: random.Random, *, background: bool = False) -> None:
        token = self.user_tokens.get(caller)
        if token is None:
            await self.login(caller, rng)
            return
        body = {
            "agent_id": rng.choice(("summarizer", "classifier")),
            "input_text": make_text(rng),
            "background": background,
        }
        label = "agents.run_background" if background else "agents.run"
        response = await self.post(label, "agents", "/api/v1/agents/run", token, body)
        if response is None:
            return
        if background and response.status_code == 202:
            self.ledger.background_runs.add(response.json()["run_id"])
        elif not background and response.status_code == 200:
            run = response.json()
            self.ledger.sync_runs[run["run_id"]] = run["status"]

    async def run_background(self, caller: int, rng: random.Random) -> None:
        await self.run(caller, rng, background=True)

    async def orders(self, caller: int, rng: random.Random, kind: str) -> None:
        settled = self.ledger.settled_batches
        if kind != "new" and not settled:
            kind = "new"
        if kind == "replay":
            batch = rng.choice(settled)
        else:
            batch = [make_order(rng, self.next_id(caller, "order")) for _ in range(rng.randint(1, 20))]
            if kind == "mixed":
                old = rng.choice(settled)
                batch = old[: max(1, len(old) // 2)] + batch[: max(1, len(batch) // 2)]
                rng.shuffle(batch)
        label = f"reporting.orders_{kind}"
        response = await self.post(label, "reporting", "/api/v1/orders", self.admin_token, {"orders": batch})
        if response is None:
            self.ledger.uncertain_orders.update(
                order["order_id"] for order in batch if order["order_id"] not in self.ledger.orders
            )
        elif response.status_code == 202:
            self.ledger.record_batch(kind, batch, response.json())

    async def orders_new(self, caller: int, rng: random.Random) -> None:
        await self.orders(caller, rng, "new")

    async def orders_replay(self, caller: int, rng: random.Random) -> None:
        await self.orders(caller, rng, "replay")

    async def orders_mixed(self, caller: int, rng: random.Random) -> None:
        await self.orders(caller, rng, "mixed")

    async def read(self, caller: int, rng: random.Random) -> None:
        token = self.user_tokens.get(caller)
        if token is None:
            await self.login(caller, rng)
            return
        # The usage report makes reporting read the agents service: the three services together.
        recent = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
        label, service, path = rng.choice(
            [
                ("users.me", "users", "/users/me"),
                ("agents.list_runs", "agents", "/api/v1/agents/runs?limit=20"),
                ("reporting.top_products", "reporting", "/top-products?count=10"),
                ("reporting.agent_usage", "reporting", f"/api/v1/reports/agent-usage?since={quote(recent)}"),
            ]
        )
        await self.recorder.request(
            self.client, label, "GET", f"{self.urls[service]}{path}", headers=self.auth(token)
        )

    async def caller(self, index: int, seed: int, deadline: float) -> None:
        rng = random.Random(seed * 1_000_003 + index)  # noqa: S311 - a reproducible load, not a secret
        actions: dict[str, Callable[[int, random.Random], Coroutine[Any, Any, None]]] = {
            "register": self.register,
            "register_taken": self.register_taken,
            "login": self.login,
            "run": self.run,
            "run_background": self.run_background,
            "orders_new": self.orders_new,
            "orders_replay": self.orders_replay,
            "orders_mixed": self.orders_mixed,
            "read": self.read,
        }
        names, weights = list(WEIGHTS), list(WEIGHTS.values())
        await self.login(index, rng)
        while time.monotonic() < deadline:
            await actions[rng.choices(names, weights)[0]](index, rng)

    async def unfinished_runs(self) -> int:
        """Runs still queued or running, as the agents service reports them to an administrator."""
        total = 0
        for status in ("queued", "running"):
            response = await self.client.get(
                f"{self.urls['agents']}/api/v1/agents/runs",
                params={"status": status, "limit": 200},
                headers=self.auth(self.admin_token),
            )
            response.raise_for_status()
            total += len(response.json()["items"])
        return total

    async def top_products(self) -> dict[str, int]:
        response = await self.client.get(
            f"{self.urls['reporting']}/top-products",
            params={"count": 100},
            headers=self.auth(self.admin_token),
        )
        response.raise_for_status()
        return {row["product_id"]: int(row["cnt_bought"]) for row in response.json()}


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seconds: float
    callers: int
    warmup: float
    db: str
    seed: int
    drain_timeout: float
    bound: load.MemoryBound
    keep: bool


def service_env(name: str, dbs: load.Databases) -> dict[str, str]:
    env = {"STARLING_ENV": "development", "STARLING_RATE_LIMIT": services.UNLIMITED_RATE, **dbs.env(name)}
    if name == "users":
        env |= {"STARLING_USERS_ADMIN_EMAIL": ADMIN_EMAIL, "STARLING_USERS_ADMIN_PASSWORD": PASSWORD}
        env |= PASSWORD_ENV
    if name == "reporting":
        env["STARLING_REPORTING_AGENTS_URL"] = f"http://127.0.0.1:{PORTS['agents']}"
    return env


async def drive(
    options: Options, running: dict[str, services.Running]
) -> tuple[Soak, load.MemorySampler, bool]:
    """The load itself, then the wait for background runs; memory is marked after warm-up and at the end."""
    urls = {name: item.url for name, item in running.items()}
    sampler = load.MemorySampler({name: item.pid for name, item in running.items()})
    async with load.http_client(connections=options.callers * 3, seconds=30.0) as client:
        login = await client.post(
            f"{urls['users']}/auth/token", json={"email": ADMIN_EMAIL, "password": PASSWORD}
        )
        login.raise_for_status()
        soak = Soak(client, urls, login.json()["access_token"])
        soak.secrets.update(issued(login.json()))
        sampling = asyncio.create_task(sampler.run(), name="soak-memory")
        started = time.monotonic()
        deadline = started + options.seconds
        callers = [
            asyncio.create_task(soak.caller(index, options.seed, deadline), name=f"soak-caller-{index}")
            for index in range(options.callers)
        ]
        await asyncio.sleep(min(options.warmup, options.seconds))
        sampler.mark("warm")
        await asyncio.gather(*callers)
        sampler.mark("end")
        soak.elapsed = time.monotonic() - started
        drained = await load.wait_for(
            lambda: _none_unfinished(soak), within=options.drain_timeout, interval=0.25
        )
        soak.top = await soak.top_products()
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling
    return soak, sampler, drained


async def _none_unfinished(soak: Soak) -> bool:
    return await soak.unfinished_runs() == 0


async def verify(soak: Soak, dbs: load.Databases) -> list[load.Check]:
    """The ledger against the databases, read directly after the services stopped."""
    ledger = soak.ledger
    checks = []

    emails = {row[0] for row in await load.query(dbs.urls["users"], "SELECT email_normalized FROM users")}
    expected_emails = {email.lower() for email in ledger.registered} | {ADMIN_EMAIL}
    checks.append(
        load.check(
            "users stored exactly once",
            emails == expected_emails,
            f"{len(ledger.registered)} registrations answered 201 (+1 admin), {len(emails)} rows; "
            f"missing {len(expected_emails - emails)}, unexpected {len(emails - expected_emails)}",
        )
    )

    rows = await load.query(dbs.urls["agents"], "SELECT run_id, status FROM runs")
    stored_runs: dict[str, str] = {row[0]: row[1] for row in rows}
    statuses = Counter(stored_runs.values())
    changed = [rid for rid, status in ledger.sync_runs.items() if stored_runs.get(rid) != status]
    checks.append(
        load.check(
            "runs stored exactly once, all finished",
            set(stored_runs) == ledger.runs
            and len(rows) == len(ledger.runs)
            and statuses.get("queued", 0) + statuses.get("running", 0) == 0
            and not changed,
            f"{len(ledger.sync_runs)} sync (200) + {len(ledger.background_runs)} background (202) accepted, "
            f"{len(rows)} rows {dict(statuses)}; missing {len(ledger.runs - set(stored_runs))}, "
            f"unexpected {len(set(stored_runs) - ledger.runs)}, sync status changed {len(changed)}",
        )
    )

    order_ids = {row[0] for row in await load.query(dbs.urls["reporting"], "SELECT order_id FROM orders")}
    accepted_ids = set(ledger.orders)
    unexplained = order_ids - accepted_ids - ledger.uncertain_orders
    checks.append(
        load.check(
            "orders stored exactly once",
            accepted_ids <= order_ids and not unexplained and ledger.accepted == len(accepted_ids),
            f"{sum(ledger.batches.values())} batches {dict(ledger.batches)}; accepted {ledger.accepted}, "
            f"duplicates {ledger.duplicates} ({ledger.replayed} replayed orders); {len(order_ids)} rows; "
            f"missing {len(accepted_ids - order_ids)}, unexplained {len(unexplained)}",
        )
    )
    item_rows = await load.query(
        dbs.urls["reporting"], "SELECT product_id, SUM(quantity) FROM order_items GROUP BY product_id"
    )
    stored_units = {product_id: int(total) for product_id, total in item_rows}
    expected_units = dict(ledger.units_by_product())
    checks.append(
        load.check(
            "units per product: database = ledger = /top-products",
            stored_units == expected_units == soak.top,
            f"{sum(expected_units.values())} units over {len(expected_units)} products in the ledger, "
            f"{sum(stored_units.values())} in the database, "
            f"{sum(soak.top.values())} in /top-products",
        )
    )
    return checks


def run(options: Options) -> int:
    with load.work_dir("starling-soak-", keep=options.keep) as directory:
        with load.databases(options.db, NAMES, directory, prefix="soak") as dbs:
            logs = {name: directory / f"{name}.log" for name in NAMES}
            started: list[services.Running] = []
            try:
                for name in NAMES:
                    service = services.Service(name, PORTS[name], service_env(name, dbs))
                    started.append(load.start_logged(service, logs[name]))
                services.wait_healthy(started, timeout=60)
                running = {item.service.name: item for item in started}
                soak, sampler, drained = asyncio.run(drive(options, running))
            finally:
                services.stop(started)
            checks = report_checks(options, soak, sampler, drained, logs)
            checks += asyncio.run(verify(soak, dbs))
        print(render(options, soak, checks))
        return load.exit_code(checks)


def report_checks(
    options: Options,
    soak: Soak,
    sampler: load.MemorySampler,
    drained: bool,
    logs: dict[str, Path],
) -> list[load.Check]:
    recorder = soak.recorder
    unexpected = recorder.unexpected(EXPECTED)
    tracebacks = {name: load.log_errors(log) for name, log in logs.items()}
    leaked = {name: load.secrets_in_log(log, soak.secrets) for name, log in logs.items()}
    checks = [
        load.check(
            "no 5xx",
            recorder.server_errors() == 0,
            f"{recorder.server_errors()} of {recorder.total} answers",
        ),
        load.check(
            "every request answered",
            recorder.failures() == 0,
            f"{recorder.failures()} without an answer {dict(recorder.errors) or ''}".rstrip(),
        ),
        load.check(
            "only the expected statuses",
            not unexpected,
            f"{sum(unexpected.values())} unexpected {dict(unexpected) or ''}".rstrip(),
        ),
        load.check(
            "each ingest answer counts exactly the new orders",
            not soak.ledger.mismatches,
            f"{len(soak.ledger.mismatches)} mismatches {soak.ledger.mismatches[:3] or ''}".rstrip(),
        ),
        load.check(
            "background runs all finished",
            drained,
            f"{len(soak.ledger.background_runs)} queued; none left queued or running"
            if drained
            else f"still unfinished after {options.drain_timeout:.0f} s",
        ),
        load.check(
            "no tracebacks in the service logs",
            not any(tracebacks.values()),
            ", ".join(f"{name} {count}" for name, count in tracebacks.items()),
        ),
        load.check(
            "no token, password or hash in the service logs",
            not any(leaked.values()),
            f"{len(soak.secrets)} tokens and passwords looked for; found "
            + ", ".join(f"{name} {count}" for name, count in leaked.items()),
        ),
    ]
    return checks + load.memory_checks(sampler, options.bound, warm="warm", end="end")


def render(options: Options, soak: Soak, checks: Sequence[load.Check]) -> str:
    elapsed = soak.elapsed or options.seconds
    notes = [
        f"{options.callers} callers for {elapsed:.1f} s on {options.db} (seed {options.seed}); "
        f"{soak.recorder.total} requests, {soak.recorder.total / elapsed:.0f}/s; "
        f"warm-up {options.warmup:.0f} s; memory bound: {options.bound.describe()}",
        "Argon2id at time_cost=1, memory_cost=8 MiB, parallelism=1 (hashing is not what is soaked)",
        *soak.recorder.table(),
        *(f"  sample: {text}" for text in soak.recorder.samples),
    ]
    return load.render("soak", checks, notes)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m starling_devtools.soak", description=__doc__.splitlines()[0]
    )
    # short in the README's test command; the nightly workflow runs it for 10 minutes
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the load lasts (default 20)")
    parser.add_argument("--callers", type=int, default=50, help="concurrent callers (default 50)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds before the first memory sample (default: 1/6 of the run, at most 10)",
    )
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--drain-timeout", type=float, default=120.0, help="seconds background runs get to finish"
    )
    parser.add_argument(
        "--memory-mib", type=float, default=64.0, help="growth always allowed, MiB (default 64)"
    )
    parser.add_argument(
        "--memory-fraction", type=float, default=0.25, help="or this fraction of the warm RSS"
    )
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.callers < 1:
        parser.error("--seconds must be positive and --callers at least 1")
    warmup = args.warmup if args.warmup is not None else min(10.0, args.seconds / 6)
    return Options(
        seconds=args.seconds,
        callers=args.callers,
        warmup=warmup,
        db=args.db,
        seed=args.seed,
        drain_timeout=args.drain_timeout,
        bound=load.MemoryBound(args.memory_mib, args.memory_fraction),
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
