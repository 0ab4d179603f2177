"""What must hold after the soak: every answer as expected, the logs clean, memory bounded, and the
databases (read directly, after the services stopped) holding exactly what the ledger booked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from starling_devtools.harness import Check, Recorder, bearer, check, query
from starling_devtools.soak.ledger import Ledger

# What each operation may answer; anything else fails the run (an operation not listed: any 2xx).
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


def answers(recorder: Recorder, ledger: Ledger) -> list[Check]:
    unexpected = recorder.unexpected(EXPECTED)
    return [
        check(
            "no 5xx", recorder.server_errors() == 0, f"{recorder.server_errors()} of {recorder.total} answers"
        ),
        check(
            "every request answered",
            recorder.failures() == 0,
            f"{recorder.failures()} without an answer {dict(recorder.errors) or ''}".rstrip(),
        ),
        check(
            "only the expected statuses",
            not unexpected,
            f"{sum(unexpected.values())} unexpected {dict(unexpected) or ''}".rstrip(),
        ),
        check(
            "each ingest answer counts exactly the new orders",
            not ledger.mismatches,
            f"{len(ledger.mismatches)} mismatches {ledger.mismatches[:3] or ''}".rstrip(),
        ),
    ]


async def runs_drained(client: httpx.AsyncClient, agents: str, token: str) -> bool:
    """No run queued or running, as the agents service reports them to an administrator."""
    for status in ("queued", "running"):
        params = {"status": status, "limit": 1}
        response = await client.get(f"{agents}/api/v1/agents/runs", params=params, headers=bearer(token))
        if response.raise_for_status().json()["items"]:
            return False
    return True


async def top_products(client: httpx.AsyncClient, reporting: str, token: str) -> dict[str, int]:
    """Units per product by reporting's `/top-products`."""
    response = await client.get(f"{reporting}/top-products", params={"count": 100}, headers=bearer(token))
    return {row["product_id"]: int(row["cnt_bought"]) for row in response.raise_for_status().json()}


async def stored_orders(url: str) -> tuple[set[str], dict[str, int]]:
    """The order ids, and the units per product, that reporting's database at `url` holds."""
    ids = {row[0] for row in await query(url, "SELECT order_id FROM orders")}
    sql = "SELECT product_id, SUM(quantity) FROM order_items GROUP BY product_id"
    return ids, {row[0]: int(row[1]) for row in await query(url, sql)}


@dataclass(frozen=True)
class Stored:
    """What the databases of users, agents and reporting hold, read directly (not through the services)."""

    emails: set[str]
    runs: dict[str, str]  # run id -> status
    orders: set[str]
    units: dict[str, int]  # units per product

    @classmethod
    async def read(cls, urls: Mapping[str, str]) -> Stored:
        emails = {row[0] for row in await query(urls["users"], "SELECT email_normalized FROM users")}
        runs = {row[0]: row[1] for row in await query(urls["agents"], "SELECT run_id, status FROM runs")}
        return cls(emails, runs, *await stored_orders(urls["reporting"]))


async def stored(ledger: Ledger, urls: Mapping[str, str], admin: str, top: Mapping[str, int]) -> list[Check]:
    """The ledger against the databases, read directly after the services stopped: each accepted write
    there exactly once, and nothing else."""
    held = await Stored.read(urls)
    expected_emails = ledger.users | {admin}
    statuses = Counter(held.runs.values())
    changed = [rid for rid, status in ledger.sync_runs.items() if held.runs.get(rid) != status]
    accepted_ids = set(ledger.orders)
    unexplained = held.orders - accepted_ids - ledger.uncertain_orders
    expected_units = dict(ledger.units_by_product())
    return [
        check(
            "users stored exactly once",
            held.emails == expected_emails,
            f"{len(ledger.registered)} registrations answered 201, {len(ledger.deleted)} deleted (+1 admin), "
            f"{len(held.emails)} rows; missing {len(expected_emails - held.emails)}, "
            f"unexpected {len(held.emails - expected_emails)}",
        ),
        check(
            "runs stored exactly once, all finished",
            held.runs.keys() == ledger.runs
            and statuses.get("queued", 0) + statuses.get("running", 0) == 0
            and not changed,
            f"{len(ledger.sync_runs)} sync (200) + {len(ledger.background_runs)} background (202) accepted, "
            f"{len(held.runs)} rows {dict(statuses)}; missing {len(ledger.runs - held.runs.keys())}, "
            f"unexpected {len(held.runs.keys() - ledger.runs)}, sync status changed {len(changed)}",
        ),
        check(
            "orders stored exactly once",
            accepted_ids <= held.orders and not unexplained and ledger.accepted == len(accepted_ids),
            f"{sum(ledger.batches.values())} batches {dict(ledger.batches)}; accepted {ledger.accepted}, "
            f"duplicates {ledger.duplicates} ({ledger.replayed} replayed orders); {len(held.orders)} rows; "
            f"missing {len(accepted_ids - held.orders)}, unexplained {len(unexplained)}",
        ),
        check(
            "units per product: database = ledger = /top-products",
            held.units == expected_units == top,
            f"{sum(expected_units.values())} units over {len(expected_units)} products in the ledger, "
            f"{sum(held.units.values())} in the database, {sum(top.values())} in /top-products",
        ),
    ]
