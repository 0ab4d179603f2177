"""Figure 2: a request through the kit's `client`, against a bare Starlette route doing the same read.

The pair, both through `httpx.AsyncClient(transport=httpx.ASGITransport(...))` in one pytest test of a
generated project (`projects/requests/requests_tests.py`), on the test's own connection:

- the kit: `auth_client` (the kit's fixture, a bearer token included) on the users service's
  `GET /users/me`, through its whole stack: request id, body limit, JWT authentication, rate limit,
  the operation's validation, the service and repository in a transaction, JSON errors;
- the reference: a bare Starlette app whose one route reads the same user by primary key on the same
  connection with an `AsyncSession` and returns the same JSON.

Also a bare `/health` (no database), to set beside the anchor's 0.21 ms, which comes from another
machine of this kind, not from this run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starling_devtools.bench import projects
from starling_devtools.bench.results import LABELS, Figure, at_most, median, ratio
from starling_devtools.harness.environment import UNLIMITED_RATE

PART = "requests"
TARGET_RATIO = 2.0
ANCHOR_HEALTH_MS = 0.21


def measure(directory: Path, database: str, *, server_url: str | None) -> dict[str, Any]:
    """Run the request project on `database`; per-round seconds per request for each client."""
    projects.generate(projects.REQUESTS, directory, 1)
    out = directory / f"requests-{database}.json"
    env: dict[str, str | None] = {
        "STARLING_RATE_LIMIT": UNLIMITED_RATE,
        "BENCH_REQUESTS_OUT": str(out),
        "STARLING_TEST_DATABASE_URL": server_url if database == "postgres" else None,
    }
    run = projects.run(directory, ["--db", database], expect=1, env=env)
    measured: dict[str, Any] = json.loads(out.read_text())
    return measured | {"pytest_seconds": run.pytest}


def _ms(measured: dict[str, Any], name: str) -> tuple[float, str]:
    """The median milliseconds a request of one client, and the spread of its rounds."""
    rounds: list[float] = measured["seconds"][name]
    spread = f"rounds {1000 * min(rounds):.3f}-{1000 * max(rounds):.3f} ms"
    return 1000 * median(rounds), spread


def figures(by_database: dict[str, dict[str, Any]]) -> list[Figure]:
    found: list[Figure] = []
    for database, measured in by_database.items():
        (kit, spread), (bare, _) = _ms(measured, "kit_users_me"), _ms(measured, "bare_read")
        found.append(
            Figure(
                PART,
                f"kit auth_client, users GET /users/me, full stack, {LABELS[database]}",
                kit,
                "ms",
                reference="bare Starlette route, same read, same connection",
                reference_value=bare,
                target=at_most(ratio(kit, bare), TARGET_RATIO, "x"),
                detail=f"{spread}, {len(measured['seconds']['kit_users_me'])} rounds of {measured['batch']}",
            )
        )
    if by_database:
        health, spread = _ms(next(iter(by_database.values())), "bare_health")
        reference = "anchor (another run, same kind of machine)"
        name = "bare Starlette /health, no database"
        found.append(Figure(PART, name, health, "ms", reference, ANCHOR_HEALTH_MS, detail=spread))
    return found
