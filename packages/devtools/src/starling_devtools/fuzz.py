"""`python -m starling_devtools.fuzz`: schemathesis against every service's `/openapi.json`, over real HTTP.

Every service of the workspace runs on the harness (assessments, and any service added under
`services/`, included), each on its own fresh database (SQLite files, or a throwaway PostgreSQL cluster
with `--db postgres`), with a rate limit high enough that a 429 never hides an answer. The data a
fuzzer cannot make up is put there first: demo agents and orders through the services' own APIs, and a
small upstream orders API for the reporting service to extract from, so that the 503s the contract
reserves for "no data yet" and "no upstream" are not what gets tested.

Each service is then fuzzed as three callers: an administrator holding every scope its document
declares (every phase, stateful included), a plain user and an anonymous caller (fewer examples: they
mostly meet 401 and 403). `POST /auth/logout` is left out for every caller: it would end the caller's
own token mid-run, and every later answer would be a 401 that says nothing. The run fails on any
finding of the checks below, and prints each one with a curl command that reproduces it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import random
import secrets
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from starling_devtools import harness, seed
from starling_devtools.faults.upstream import FakeUpstream, serving_in_thread, upstream_orders

CALLERS = ("admin", "user", "anonymous")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
USER_EMAIL = "fuzz-user@example.com"
PASSWORD = "fuzz-password-0123"
# Operations no caller is fuzzed on: each would end the caller's own token (see the docstring).
EXCLUDED_PATHS = ("/auth/logout",)
UPSTREAM_ORDERS = 12
RUN_TIMEOUT = 900.0


Tokens = dict[str, str | None]  # caller -> its token (None: no Authorization header)


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


def plan(
    names: Sequence[str], callers: Sequence[str], max_examples: int, *, every_phase: bool = False
) -> list[Pass]:
    """The passes to run: the administrator gets every phase, the others a smaller share.

    The coverage phase sends each operation's boundary values whatever `max_examples` says (some 300
    cases a service); for a caller without the scopes most of them meet the same 401 or 403, and the
    administrator's pass already sends them to the code behind the check. So the others skip it unless
    `every_phase` (the nightly run) asks.
    """
    others = ("examples", "coverage", "fuzzing") if every_phase else ("examples", "fuzzing")
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
                passes.append(Pass(name, caller, max(3, max_examples // 5), others))
    return passes


def schemathesis_command(
    item: Pass,
    url: str,
    *,
    token: str | None,
    seed_value: int,
    workers: int,
    report: Path,
    exclude: Sequence[str] = (),
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
        *[arg for path in exclude for arg in ("--exclude-path", path)],
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


# --- the run -----------------------------------------------------------------------------------------


def caller_tokens(stack: harness.Stack, documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Tokens]:
    """Per service, each caller's token: real logins where the users service runs, and for the
    administrator a token minted with the same subject wherever its role lacks a scope the document
    names (a new service's scopes are granted to no role until an operator grants them)."""
    admin = stack.environment.admin or harness.Admin()
    subject, held, tokens = "fuzz-admin", set[str](), {"admin": "", "user": ""}
    if "users" in stack.urls:
        users = stack.urls["users"]
        with httpx.Client(timeout=10.0) as client:
            harness.register(client, users, USER_EMAIL, PASSWORD)
            tokens["user"] = harness.login(client, users, USER_EMAIL, PASSWORD)["access_token"]
            answer = harness.login(client, users, admin.email, admin.password)
            tokens["admin"] = answer["access_token"]
            held = set(answer.get("scope", "").split())
            me = client.get(f"{users}/users/me", headers=harness.bearer(tokens["admin"]))
            subject = me.raise_for_status().json()["id"]
    found = {}
    for name, document in documents.items():
        wanted = harness.declared_scopes(document)
        admin_token = tokens["admin"] if tokens["admin"] and wanted <= held else ""
        found[name] = {
            "admin": admin_token or stack.environment.mint(subject, sorted(wanted | held)),
            "user": tokens["user"] or stack.environment.mint("fuzz-user", []),
            "anonymous": None,
        }
    return found


def run_pass(
    item: Pass,
    url: str,
    token: str | None,
    *,
    seed_value: int,
    workers: int,
    work_dir: Path,
    exclude: Sequence[str] = (),
) -> Outcome:
    report = work_dir / f"{item.service}-{item.caller}.json"
    command = schemathesis_command(
        item, url, token=token, seed_value=seed_value, workers=workers, report=report, exclude=exclude
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
    parser = harness.command_line("fuzz", __doc__.splitlines()[0])
    parser.add_argument("--service", action="append", help="fuzz only this service (repeatable)")
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
    parser.add_argument(
        "--every-phase",
        action="store_true",
        help="the coverage phase for the user and anonymous passes too (the nightly run)",
    )
    parser.add_argument("--seed", type=int, help="schemathesis seed (random, and printed, when absent)")
    parser.add_argument("--workers", type=int, default=1, help="schemathesis workers per pass")
    parser.add_argument("--db", choices=harness.KINDS, default="sqlite")
    parser.add_argument(
        "--port-base", type=int, default=0, help="base + each service's offset (0: free ports)"
    )
    args = parser.parse_args(argv)
    if args.max_examples < 1 or args.workers < 1:
        parser.error("--max-examples and --workers must be at least 1")
    if unknown := set(args.service or ()) - set(harness.discover(args.root)):
        parser.error(f"--service: no such service {sorted(unknown)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    callers = args.caller or list(CALLERS)
    seed_value = args.seed if args.seed is not None else secrets.randbelow(2**32)

    with contextlib.ExitStack() as stack:
        # reports and schemathesis' replay files too (replay from there: st replay <id>)
        work_dir = stack.enter_context(harness.work_dir("starling-fuzz-", keep=args.keep))
        orders = upstream_orders(0, UPSTREAM_ORDERS, random.Random(0))  # noqa: S311 - orders, not a secret
        upstream = stack.enter_context(serving_in_thread(FakeUpstream(orders, drop_every=0)))
        # Every service runs whichever are fuzzed: tokens come from users, agent usage from agents.
        settings = {"reporting": {"STARLING_REPORTING_UPSTREAM_URL": upstream}}
        run = harness.run(
            work_dir, root=args.root, db=args.db, base=args.port_base, settings=settings, quiet=True
        )
        served = stack.enter_context(run)
        with httpx.Client(timeout=10.0) as client:
            documents = {
                name: client.get(f"{url}/openapi.json").raise_for_status().json()
                for name, url in served.urls.items()
            }
        tokens = caller_tokens(served, documents)
        if {"users", "agents", "reporting"} <= served.urls.keys():
            admin = served.environment.admin or harness.Admin()
            seeded = seed.seed(served.urls, admin.email, admin.password)
            print(
                f"up on {args.db}; agents {seeded.agents_created}, orders {seeded.orders_accepted}",
                flush=True,
            )

        results = []
        for item in plan(
            args.service or list(served.urls), callers, args.max_examples, every_phase=args.every_phase
        ):
            outcome = run_pass(
                item,
                served.urls[item.service],
                tokens[item.service][item.caller],
                seed_value=seed_value,
                workers=args.workers,
                work_dir=work_dir,
                exclude=[path for path in EXCLUDED_PATHS if path in documents[item.service].get("paths", {})],
            )
            dead = [name for name, running in served.running.items() if running.process.poll() is not None]
            if dead:
                outcome = dataclasses.replace(outcome, errors=[*outcome.errors, f"exited: {', '.join(dead)}"])
            results.append((item, outcome))
            if dead:
                break

    print(summary(results, seed_value), flush=True)
    return 0 if results and all(outcome.ok for _, outcome in results) else 1


if __name__ == "__main__":
    sys.exit(main())
