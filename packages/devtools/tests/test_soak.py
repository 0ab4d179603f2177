"""The soak's books and the shared checks: what counts as accepted, lost, unexpected or grown too much."""

from __future__ import annotations

import json
import random
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from starling_devtools import harness
from starling_devtools.harness import Recorder, Running, Service, logs, operations, plain_gets
from starling_devtools.soak.__main__ import parse_args
from starling_devtools.soak.callers import PASSWORD, Callers, make_order
from starling_devtools.soak.ledger import Ledger
from starling_devtools.soak.memory import MIB, MemoryBound, MemorySampler
from starling_devtools.soak.verification import EXPECTED


def batch(*ids: str) -> list[dict[str, Any]]:
    rng = random.Random(0)
    return [make_order(rng, order_id) for order_id in ids]


def test_a_new_batch_then_its_replay_are_booked_as_accepted_then_duplicates() -> None:
    ledger = Ledger()
    orders = batch("a", "b", "c")

    ledger.record_batch("new", orders, {"accepted": 3, "duplicates": 0})
    ledger.record_batch("replay", orders, {"accepted": 0, "duplicates": 3})

    assert set(ledger.orders) == {"a", "b", "c"}
    assert (ledger.accepted, ledger.duplicates, ledger.replayed) == (3, 3, 3)
    assert ledger.mismatches == []


def test_an_answer_that_counts_a_replay_as_new_is_a_mismatch() -> None:
    ledger = Ledger()
    ledger.record_batch("new", batch("a", "b"), {"accepted": 2, "duplicates": 0})

    ledger.record_batch("mixed", batch("b", "c"), {"accepted": 2, "duplicates": 0})

    assert ledger.mismatches == [
        "mixed: expected {'accepted': 1, 'duplicates': 1}, answered {'accepted': 2, 'duplicates': 0}"
    ]
    # the sum of what was answered (4) no longer matches the orders booked (3): the database check,
    # which compares the two, fails as well
    assert ledger.accepted == 4
    assert len(ledger.orders) == 3


def test_units_by_product_count_each_accepted_order_once() -> None:
    ledger = Ledger()
    orders = batch("a", "b")
    ledger.record_batch("new", orders, {"accepted": 2, "duplicates": 0})
    ledger.record_batch("replay", orders, {"accepted": 0, "duplicates": 2})

    expected: Counter[str] = Counter()
    for order in orders:
        for item in order["items"]:
            expected[item["product_id"]] += item["quantity"]
    assert ledger.units_by_product() == expected


def test_generated_orders_are_valid_ingestion_input() -> None:
    rng = random.Random(3)
    for number in range(50):
        order = make_order(rng, f"o-{number}")
        assert 1 <= len(order["items"]) <= 3
        assert len({item["product_id"] for item in order["items"]}) == len(order["items"])
        assert all(1 <= item["quantity"] <= 5 for item in order["items"])


async def test_the_recorder_tells_answers_server_errors_and_no_answers_apart() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/down":
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(int(request.url.path.strip("/")), json={"detail": "x"})

    recorder = Recorder()
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url="http://t") as client:
        assert (await recorder.request(client, "users.register", "POST", "/201")) is not None
        await recorder.request(client, "users.register", "POST", "/500")
        assert await recorder.request(client, "users.register", "POST", "/down") is None
        await recorder.request(client, "users.register_taken", "POST", "/409")

    assert recorder.total == 4
    assert recorder.server_errors() == 1
    assert recorder.failures() == 1
    assert recorder.unexpected(EXPECTED) == {("users.register", 500): 1}
    assert recorder.samples[0].startswith("users.register: 500")
    assert "users.register_taken" in "\n".join(recorder.table())


async def test_the_soak_books_only_what_the_services_accepted() -> None:
    stored: set[str] = set()

    def reporting(request: httpx.Request) -> httpx.Response:
        orders = json.loads(request.content)["orders"]
        new = {order["order_id"] for order in orders} - stored
        stored.update(new)
        return httpx.Response(202, json={"accepted": len(new), "duplicates": len(orders) - len(new)})

    async with httpx.AsyncClient(transport=httpx.MockTransport(reporting)) as client:
        soak = Callers(client, {"reporting": "http://reporting"}, admin_token="t")
        rng = random.Random(5)
        for kind in ("new", "replay", "mixed", "new", "replay"):
            await soak.orders(0, rng, kind)

    assert soak.ledger.mismatches == []
    assert set(soak.ledger.orders) == stored
    assert soak.ledger.accepted == len(stored)
    assert soak.ledger.batches == {"new": 2, "replay": 2, "mixed": 1}


async def test_each_caller_sends_on_its_own_client_when_it_has_one() -> None:
    # one pool shared by 50 callers spent half the load's time matching requests to connections
    hosts: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        hosts.append(request.headers["x-client"])
        return httpx.Response(202, json={"accepted": 1, "duplicates": 0})

    def client(name: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(answer), headers={"x-client": name})

    async with client("shared") as shared, harness.http_clients(2, connections=1, seconds=1.0) as made:
        assert len({id(made[0]), id(made[1])}) == 2
        own = [client("first"), client("second")]
        soak = Callers(shared, {"reporting": "http://reporting"}, "t", own)
        rng = random.Random(1)
        for caller in (0, 1, 2):
            await soak.orders(caller, rng, "new")
        alone = Callers(shared, {"reporting": "http://reporting"}, "t")
        await alone.orders(0, rng, "new")
        for each in own:
            await each.aclose()
    assert [each.is_closed for each in made] == [True, True]
    assert hosts == ["first", "second", "first", "shared"]


def test_memory_may_grow_by_the_larger_of_the_absolute_and_relative_bounds() -> None:
    bound = MemoryBound(absolute_mib=64, fraction=0.25)

    assert bound.allowed(100 * MIB) == 64 * MIB
    assert bound.allowed(400 * MIB) == 100 * MIB
    assert bound.holds(100 * MIB, 164 * MIB)
    assert not bound.holds(100 * MIB, 165 * MIB)


def test_a_service_that_grew_past_the_bound_fails_its_memory_check() -> None:
    exited = subprocess.Popen(["true"])  # memory is read from marks here, never from the process
    exited.wait()
    sampler = MemorySampler({name: Running(Service(name, 1), exited) for name in ("users", "agents")})
    sampler.marks = {
        "warm": {"users": 100 * MIB, "agents": 100 * MIB},
        "end": {"users": 110 * MIB, "agents": 300 * MIB},
    }
    sampler.peak = {"users": 120 * MIB, "agents": 300 * MIB}

    checks = {check.name: check for check in sampler.checks(MemoryBound(), warm="warm", end="end")}

    assert checks["memory of users"].ok
    assert not checks["memory of agents"].ok
    assert "+200.0 MiB" in checks["memory of agents"].figures


def test_a_report_fails_when_any_check_fails() -> None:
    checks = [harness.check("first", True, "1"), harness.check("second", False, "2")]

    assert harness.exit_code(checks) == 1
    assert harness.exit_code(checks[:1]) == 0
    assert harness.exit_code([]) == 1  # a run that checked nothing proved nothing
    assert "[FAIL] second: 2" in harness.render("soak", checks)


@pytest.mark.parametrize(
    ("values", "fraction", "expected"),
    [([], 0.5, 0.0), ([3.0, 1.0, 2.0], 0.5, 2.0), ([1.0, 2.0, 3.0, 4.0], 0.99, 4.0), ([5.0], 0.01, 5.0)],
)
def test_percentile_is_nearest_rank(values: list[float], fraction: float, expected: float) -> None:
    assert harness.percentile(values, fraction) == expected


def test_defaults_are_short_and_a_short_run_warms_up_for_a_sixth() -> None:
    default = parse_args([])
    short = parse_args(["--seconds", "12", "--callers", "5"])
    long = parse_args(["--seconds", "600"])

    # 20 s in the README's test command; the nightly workflow runs 600
    assert (default.seconds, default.callers, round(default.warmup, 2), default.db) == (
        20.0,
        50,
        3.33,
        "sqlite",
    )
    assert default.revocation_bound == 5.0
    assert long.warmup == 10.0
    assert (short.seconds, short.callers, short.warmup) == (12.0, 5, 2.0)


def test_nonsense_durations_are_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--seconds", "0"])


def test_a_log_holding_a_token_a_password_or_a_hash_is_caught(tmp_path: Path) -> None:
    log = tmp_path / "users.log"
    log.write_text(
        "INFO starling.access [r-1] POST /auth/token 200 3.1 ms 127.0.0.1\n"
        "INFO starling.access [r-2] GET /users/me 200 1.0 ms 127.0.0.1\n"
    )
    assert logs.secrets_in(log, {"tok-abc", "pass-123"}) == 0

    with log.open("a") as file:
        file.write(
            "WARNING x: header Bearer tok-abc\nDEBUG y: body pass-123\n"
            "DEBUG z: $argon2id$v=19$m=8$salt$hash\n"
        )

    assert logs.secrets_in(log, {"tok-abc", "pass-123"}) == 3
    assert logs.secrets_in(tmp_path / "absent.log", {"tok-abc"}) == 0


async def test_the_soak_remembers_every_token_it_was_issued_and_the_password() -> None:
    answers = iter(["first", "second"])

    def users(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/users":
            return httpx.Response(201, json={"id": "u-1"})
        token = next(answers)
        return httpx.Response(
            200, json={"access_token": token, "refresh_token": f"r-{token}", "token_type": "bearer"}
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(users)) as client:
        soak = Callers(client, {"users": "http://users"}, admin_token="t")
        rng = random.Random(1)
        await soak.login(0, rng)
        await soak.login(0, rng)

    assert soak.user_tokens == {0: "first"}
    assert soak.secrets == {PASSWORD, "first", "r-first", "second", "r-second"}


DOCUMENT = {
    "paths": {
        "/health": {"get": {}},
        "/api/v1/items": {"get": {"security": [{"bearer": ["items:read"]}]}, "post": {}},
        "/api/v1/items/{item_id}": {"get": {"security": [{"bearer": ["items:read"]}]}},
        "/api/v1/search": {"get": {"parameters": [{"name": "q", "required": True}]}},
        "/api/v1/admin": {
            "get": {"security": [{"bearer": ["items:admin"]}], "parameters": [{"name": "limit"}]}
        },
    }
}


def test_a_service_the_soak_does_not_know_is_read_on_every_plain_get_with_every_scope() -> None:
    minted: list[list[str]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=DOCUMENT)

    def mint(scopes: object) -> str:
        minted.append(list(scopes))  # type: ignore[call-overload]
        return "tok"

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        found = operations(client, {"catalog": "http://c"}, mint)

    assert plain_gets(DOCUMENT) == [("/api/v1/items", True), ("/api/v1/admin", True)]
    assert [(op.label, op.url) for op in found] == [
        ("catalog.health", "http://c/health"),
        ("catalog.GET /api/v1/items", "http://c/api/v1/items"),
        ("catalog.GET /api/v1/admin", "http://c/api/v1/admin"),
    ]
    assert minted == [["items:admin", "items:read"]]
    assert found[1].headers == {"Authorization": "Bearer tok"}
