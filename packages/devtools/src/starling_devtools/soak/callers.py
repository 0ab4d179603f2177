"""The load: `--callers` asyncio tasks sharing one httpx client, each drawing actions until the deadline.

Against users, agents and reporting together: register users (and re-register taken addresses, which
must be 409), log in, run agents now and in the background, post order batches (new ones, replays of
batches already accepted, and batches half old and half new) and read (the agent-usage report makes
reporting read agents). Every accepted write goes into the ledger. Every other service gets the
generic load (`harness.openapi`). Each action is one request (two for a caller's first login).
"""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from starling_devtools.harness import Operation, Recorder, Stack, bearer, issued, login, operations
from starling_devtools.soak.ledger import Ledger

KNOWN = {"users", "agents", "reporting"}
PASSWORD = "soak-password-0123"
PRODUCTS = [(f"p-{number:02d}", f"Product {number:02d}") for number in range(30)]
WORDS = [
    *("agents", "summarize", "text", "for", "users", "and", "classify", "the", "great", "terrible"),
    *("reviews", "they", "write", "while", "orders", "arrive", "in", "batches", "reports", "rank"),
    *("products", "by", "units", "bought", "every", "morning", "good", "bad", "okay", "love"),
]
ORDER_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

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
# How often one service the load does not know is read, against the weights above.
GENERIC_WEIGHT = 10


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


@dataclass
class Callers:
    client: httpx.AsyncClient  # shared: the revocation probes, the verification, a caller without its own
    urls: dict[str, str]
    admin_token: str
    own: Sequence[httpx.AsyncClient] = ()  # a client a caller (`harness.http_clients`)
    recorder: Recorder = field(default_factory=Recorder)
    ledger: Ledger = field(default_factory=Ledger)
    user_tokens: dict[int, str] = field(default_factory=dict)
    sequence: Counter[int] = field(default_factory=Counter)
    emails: list[str] = field(default_factory=list)  # the registered ones, to draw from
    # GETs of the services this load does not know (`generic`): one drawn at a time
    generic: list[Operation] = field(default_factory=list)
    # every token the services issued and every password sent: none may appear in their logs
    secrets: set[str] = field(default_factory=lambda: {PASSWORD})
    text: Callable[[random.Random], str] = make_text  # what an agent run is asked to read

    @property
    def writing(self) -> bool:
        """Whether the load writes: users, agents and reporting, which it knows, all run."""
        return self.urls.keys() >= KNOWN

    def next_id(self, caller: int, kind: str) -> str:
        # Unique across callers and runs of the same callers: caller index plus its own counter.
        self.sequence[caller] += 1
        return f"{kind}-{caller:03d}-{self.sequence[caller]:06d}"

    def client_of(self, caller: int) -> httpx.AsyncClient:
        return self.own[caller % len(self.own)] if self.own else self.client

    async def post(
        self, caller: int, label: str, service: str, path: str, token: str | None, body: Any
    ) -> httpx.Response | None:
        headers = bearer(token) if token else {}
        url = f"{self.urls[service]}{path}"
        return await self.recorder.request(
            self.client_of(caller), label, "POST", url, json=body, headers=headers
        )

    # each action: one request (two for a caller's first login), booked in the ledger when accepted

    async def register(self, caller: int, rng: random.Random) -> str | None:
        """A new user; its address once the service answered 201."""
        email = f"{self.next_id(caller, 'user')}@soak.example.com"
        body = {"name": f"Soak {caller}", "email": email, "password": PASSWORD}
        response = await self.post(caller, "users.register", "users", "/users", None, body)
        if response is None or response.status_code != 201:
            return None
        self.ledger.registered.add(email)
        self.emails.append(email)
        return email

    async def register_taken(self, caller: int, rng: random.Random) -> None:
        if not self.emails:
            await self.register(caller, rng)
            return
        # The same address in other letters: uniqueness is case-insensitive.
        body = {"name": "Again", "email": rng.choice(self.emails).upper(), "password": PASSWORD}
        await self.post(caller, "users.register_taken", "users", "/users", None, body)

    async def login(self, caller: int, rng: random.Random) -> None:
        email = rng.choice(self.emails) if caller in self.user_tokens else await self.register(caller, rng)
        if email is None:
            return
        response = await self.post(
            caller, "users.login", "users", "/auth/token", None, {"email": email, "password": PASSWORD}
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
            "input_text": self.text(rng),
            "background": background,
        }
        label = "agents.run_background" if background else "agents.run"
        response = await self.post(caller, label, "agents", "/api/v1/agents/run", token, body)
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
        response = await self.post(
            caller, label, "reporting", "/api/v1/orders", self.admin_token, {"orders": batch}
        )
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
        reads = [
            ("users.me", "users", "/users/me"),
            ("agents.list_runs", "agents", "/api/v1/agents/runs?limit=20"),
            ("reporting.agent_usage", "reporting", f"/api/v1/reports/agent-usage?since={quote(recent)}"),
        ]
        # Until an order is acknowledged, the spec's answer is 503 "no order data yet": read the ranking
        # once one is, when it must be a 200.
        if self.ledger.orders:
            reads.append(("reporting.top_products", "reporting", "/top-products?count=10"))
        label, service, path = rng.choice(reads)
        await self.recorder.request(
            self.client_of(caller), label, "GET", f"{self.urls[service]}{path}", headers=bearer(token)
        )

    async def caller(self, index: int, seed: int, deadline: float) -> None:
        rng = random.Random(seed * 1_000_003 + index)  # noqa: S311 - a reproducible load, not a secret
        actions: dict[str, Callable[[int, random.Random], Coroutine[Any, Any, None]]] = {}
        weights = {}
        if self.writing:
            actions = {name: getattr(self, name) for name in WEIGHTS}
            weights = dict(WEIGHTS)
            await self.login(index, rng)
        if self.generic:
            actions["generic_read"] = self.generic_read
            weights["generic_read"] = GENERIC_WEIGHT * len({op.label.split(".")[0] for op in self.generic})
        names = list(weights)
        while time.monotonic() < deadline:
            await actions[rng.choices(names, list(weights.values()))[0]](index, rng)

    async def generic_read(self, caller: int, rng: random.Random) -> None:
        operation = rng.choice(self.generic)
        await self.recorder.request(
            self.client_of(caller), operation.label, "GET", operation.url, headers=operation.headers
        )


def admin_session(stack: Stack) -> tuple[str, str, set[str]]:
    """The administrator's token and id (a real login when the users service runs), and its secrets."""
    admin = stack.environment.admin
    if "users" not in stack.urls:
        return stack.environment.mint("soak-admin", []), "soak-admin", {admin.password}
    with httpx.Client(timeout=30.0) as client:
        answer = login(client, stack.urls["users"], admin.email, admin.password)
        me = client.get(f"{stack.urls['users']}/users/me", headers=bearer(answer["access_token"]))
    return answer["access_token"], me.raise_for_status().json()["id"], issued(answer) | {admin.password}


def callers_for(
    stack: Stack,
    client: httpx.AsyncClient,
    *,
    own: Sequence[httpx.AsyncClient] = (),
    health: bool = True,
) -> Callers:
    """Callers on every service of `stack`, as its administrator: their own load on users, agents and
    reporting, the generic one (`/health` too unless `health` is False) on every other service; each
    caller on its client in `own`, or all on `client`."""
    token, admin_id, secrets = admin_session(stack)
    urls = stack.urls
    unknown = {name: url for name, url in urls.items() if not (urls.keys() >= KNOWN and name in KNOWN)}
    with httpx.Client(timeout=30.0) as sync_client:
        ops = operations(sync_client, unknown, lambda scopes: stack.environment.mint(admin_id, list(scopes)))
    generic = [op for op in ops if health or not op.label.endswith(".health")]
    callers = Callers(client, urls, token, own, generic=generic)
    callers.secrets |= secrets
    return callers
