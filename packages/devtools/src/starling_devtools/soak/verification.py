"""What must hold after the soak: every answer as expected, the logs clean, memory bounded, and the
databases (read directly, after the services stopped) holding exactly what the ledger booked.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

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


async def unfinished_runs(client: httpx.AsyncClient, agents: str, token: str) -> int:
    """Runs still queued or running, as the agents service reports them to an administrator."""
    total = 0
    for status in ("queued", "running"):
        params = {"status": status, "limit": 200}
        response = await client.get(f"{agents}/api/v1/agents/runs", params=params, headers=bearer(token))
        total += len(response.raise_for_status().json()["items"])
    return total


async def top_products(client: httpx.AsyncClient, reporting: str, token: str) -> dict[str, int]:
    response = await client.get(f"{reporting}/top-products", params={"count": 100}, headers=bearer(token))
    return {row["product_id"]: int(row["cnt_bought"]) for row in response.raise_for_status().json()}


async def stored(ledger: Ledger, urls: Mapping[str, str], admin: str, top: Mapping[str, int]) -> list[Check]:
    """The ledger against the databases, read directly after the services stopped."""
    checks = []

    emails = {row[0] for row in await query(urls["users"], "SELECT email_normalized FROM users")}
    expected_emails = ledger.users | {admin}
    checks.append(
        check(
            "users stored exactly once",
            emails == expected_emails,
            f"{len(ledger.registered)} registrations answered 201, {len(ledger.deleted)} deleted (+1 admin), "
            f"{len(emails)} rows; "
            f"missing {len(expected_emails - emails)}, unexpected {len(emails - expected_emails)}",
        )
    )

    rows = await query(urls["agents"], "SELECT run_id, status FROM runs")
    stored_runs: dict[str, str] = {row[0]: row[1] for row in rows}
    statuses = Counter(stored_runs.values())
    changed = [rid for rid, status in ledger.sync_runs.items() if stored_runs.get(rid) != status]
    checks.append(
        check(
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

    order_ids = {row[0] for row in await query(urls["reporting"], "SELECT order_id FROM orders")}
    accepted_ids = set(ledger.orders)
    unexplained = order_ids - accepted_ids - ledger.uncertain_orders
    checks.append(
        check(
            "orders stored exactly once",
            accepted_ids <= order_ids and not unexplained and ledger.accepted == len(accepted_ids),
            f"{sum(ledger.batches.values())} batches {dict(ledger.batches)}; accepted {ledger.accepted}, "
            f"duplicates {ledger.duplicates} ({ledger.replayed} replayed orders); {len(order_ids)} rows; "
            f"missing {len(accepted_ids - order_ids)}, unexplained {len(unexplained)}",
        )
    )
    item_rows = await query(
        urls["reporting"], "SELECT product_id, SUM(quantity) FROM order_items GROUP BY product_id"
    )
    stored_units = {product_id: int(total) for product_id, total in item_rows}
    expected_units = dict(ledger.units_by_product())
    checks.append(
        check(
            "units per product: database = ledger = /top-products",
            stored_units == expected_units == top,
            f"{sum(expected_units.values())} units over {len(expected_units)} products in the ledger, "
            f"{sum(stored_units.values())} in the database, "
            f"{sum(top.values())} in /top-products",
        )
    )
    return checks
