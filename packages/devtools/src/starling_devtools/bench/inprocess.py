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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starling_devtools.bench import projects, pytest_runs
from starling_devtools.bench.results import Figure, at_most
from starling_devtools.bench.stats import median
from starling_devtools.harness.environment import UNLIMITED_RATE

PART = "requests"
TARGET_RATIO = 2.0
ANCHOR_HEALTH_MS = 0.21


def measure(
    directory: Path, database: str, *, server_url: str | None, rounds: int, batch: int
) -> dict[str, Any]:
    """Run the request project on `database`; per-round seconds per request for each client."""
    projects.generate(projects.REQUESTS, directory, 1)
    out = directory / f"requests-{database}.json"
    env: dict[str, str | None] = {
        "STARLING_RATE_LIMIT": UNLIMITED_RATE,
        "BENCH_REQUESTS_ROUNDS": str(rounds),
        "BENCH_REQUESTS_BATCH": str(batch),
        "BENCH_REQUESTS_OUT": str(out),
        "STARLING_TEST_DATABASE_URL": server_url if database == "postgres" else None,
    }
    run = pytest_runs.run(directory, ["--db", database], expect=1, env=env)
    measured: dict[str, Any] = json.loads(out.read_text())
    measured["pytest_seconds"] = run.summary.seconds
    return measured


def _ms(measured: dict[str, Any], name: str) -> float:
    per_request: Sequence[float] = measured["seconds"][name]
    return 1000 * median(per_request)


def _spread(measured: dict[str, Any], name: str) -> str:
    per_request: Sequence[float] = measured["seconds"][name]
    return f"rounds {1000 * min(per_request):.3f}-{1000 * max(per_request):.3f} ms"


def figures(by_database: dict[str, dict[str, Any]]) -> list[Figure]:
    found: list[Figure] = []
    labels = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
    for database, measured in by_database.items():
        kit, bare = _ms(measured, "kit_users_me"), _ms(measured, "bare_read")
        ratio = kit / bare if bare > 0 else None
        found.append(
            Figure(
                PART,
                f"kit auth_client, users GET /users/me, full stack, {labels[database]}",
                kit,
                "ms",
                reference="bare Starlette route, same read, same connection",
                reference_value=bare,
                target=at_most(ratio, TARGET_RATIO, "x"),
                detail=(
                    f"{_spread(measured, 'kit_users_me')}, "
                    f"{len(measured['seconds']['kit_users_me'])} rounds of {measured['batch']}"
                ),
            )
        )
    if by_database:
        first = next(iter(by_database.values()))
        found.append(
            Figure(
                PART,
                "bare Starlette /health, no database",
                _ms(first, "bare_health"),
                "ms",
                reference="anchor (another run, same kind of machine)",
                reference_value=ANCHOR_HEALTH_MS,
                detail=_spread(first, "bare_health"),
            )
        )
    return found
