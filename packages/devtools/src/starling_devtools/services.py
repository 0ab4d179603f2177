"""`nox -s serve`: every service of the workspace on its own port, seeded with demo data, until stopped.

The developer loop on the harness: each service at its `[tool.starling.serve] port` (or as
`STARLING_SERVE_PORTS` moves it), on its own database (`.data/<name>.db`, or its
`STARLING_<NAME>_DATABASE_URL`), beside a Kafka-protocol broker on `STARLING_SERVE_KAFKA_PORT` (9092)
unless `STARLING_KAFKA_BOOTSTRAP_SERVERS` names one. Whatever the operator's environment sets wins.
Ctrl-C, SIGTERM and SIGHUP stop every service and the broker alike.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from starling_devtools import harness, seed
from starling_servers import kafka

PORTS_VARIABLE = "STARLING_SERVE_PORTS"
KAFKA_PORT = 9092
DEMO_ADMIN = harness.Admin("admin@starling.dev", "starling-admin")


def parse_ports(text: str) -> dict[str, int]:
    """`name=port,name=port` (the form of STARLING_SERVE_PORTS) as a mapping; an empty text is none."""
    ports: dict[str, int] = {}
    for item in text.replace(" ", "").split(","):
        if not item:
            continue
        name, sep, port = item.partition("=")
        if not sep or not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{PORTS_VARIABLE}: {item!r} is not name=port (e.g. users=18001)")
        ports[name] = int(port)
    return ports


def serve(*, python: str, root: Path = harness.ROOT, log: Callable[[str], None] = print) -> None:
    """Serve until a stop signal (or until every service exits), then stop everything."""
    names = sorted(harness.discover(root))
    asked = parse_ports(os.environ.get(PORTS_VARIABLE, ""))
    if unknown := sorted(set(asked) - set(names)):
        raise ValueError(f"{PORTS_VARIABLE} names no service: {unknown} (services: {names})")
    admin = harness.Admin(
        os.environ.get("STARLING_USERS_ADMIN_EMAIL", DEMO_ADMIN.email),
        os.environ.get("STARLING_USERS_ADMIN_PASSWORD", DEMO_ADMIN.password),
    )
    began = time.monotonic()
    with harness.StopSignals() as signals, contextlib.ExitStack() as stack:
        try:
            bootstrap = os.environ.get("STARLING_KAFKA_BOOTSTRAP_SERVERS")
            if bootstrap is None:
                port = int(os.environ.get("STARLING_SERVE_KAFKA_PORT", str(KAFKA_PORT)))
                try:
                    bootstrap = stack.enter_context(kafka.start(port)).bootstrap
                    log(f"Kafka-protocol broker (Tansu) on {bootstrap}")
                except kafka.BrokerUnavailable as error:
                    log(f"no local broker ({error}): the services keep their events in their outboxes")
            run = harness.run(
                None, root=root, db=None, base=None, ports=asked, bootstrap=bootstrap, admin=admin,
                tool=False, python=python, signals=signals,
            )  # fmt: skip
            with run as served:
                ready(served, admin, time.monotonic() - began, log, bootstrap)
                for item in served.running.values():
                    item.process.wait()
        except KeyboardInterrupt:
            pass
        finally:
            print("all services stopped", file=sys.stderr, flush=True)


def ready(
    served: harness.Stack,
    admin: harness.Admin,
    took: float,
    log: Callable[[str], None],
    bootstrap: str | None,
) -> None:
    urls = served.urls
    if {"users", "agents", "reporting"} <= urls.keys():
        seeded = seed.seed(urls, admin.email, admin.password)
        log(
            f"demo data: agents created {seeded.agents_created or 'none (already there)'}, "
            f"orders accepted {seeded.orders_accepted} (already there {seeded.orders_duplicates})"
        )
    print(banner(urls, admin, took, bootstrap), file=sys.stderr, flush=True)
    if "users" in urls:
        try:
            with httpx.Client(timeout=10.0) as client:
                if missing := ungranted(client, urls, admin):
                    log(ungranted_warning(missing))
        except httpx.HTTPError as error:  # a hint, never a reason to stop serving
            log(f"could not compare the services' scopes with the administrator's: {error}")


def ungranted(client: httpx.Client, urls: dict[str, str], admin: harness.Admin) -> dict[str, list[str]]:
    """Per service, the scopes its OpenAPI document asks for that the administrator's token does not hold:
    a service `nox -s new` made, until `STARLING_USERS_ROLE_SCOPES` grants them."""
    held = set(harness.login(client, urls["users"], admin.email, admin.password)["scope"].split())
    declared = {
        name: harness.declared_scopes(client.get(f"{url}/openapi.json").raise_for_status().json())
        for name, url in urls.items()
    }
    return {name: sorted(scopes - held) for name, scopes in declared.items() if scopes - held}


def ungranted_warning(missing: dict[str, list[str]]) -> str:
    listed = "; ".join(f"{name}: {', '.join(scopes)}" for name, scopes in missing.items())
    return (
        f"\nscopes no administrator holds ({listed}): their routes answer 403 to every token the users\n"
        "  service issues. Grant them with STARLING_USERS_ROLE_SCOPES (the value `nox -s new` printed, or\n"
        "  packages/devtools/README.md, 'Its scopes'), exported before `nox -s serve`."
    )


def banner(urls: dict[str, str], admin: harness.Admin, took: float, bootstrap: str | None) -> str:
    """What the developer needs once everything answers: where each service is, where the events go (and
    what it costs when nowhere), and how to get a token."""
    lines = [f"\nall {len(urls)} services healthy in {took:.1f} s (Ctrl-C stops them all):"]
    width = max(len(name) for name in urls)
    lines += [f"  {name:<{width}}  {url}   (OpenAPI: {url}/openapi.json)" for name, url in urls.items()]
    if bootstrap:
        lines += ["", f"events: the Kafka-protocol broker at {bootstrap}"]
    else:
        lines += [
            "",
            "events: NO BROKER. Events wait in each service's outbox, and a token revoked on the users",
            "  service (a logout, a role or password change, a deletion) still works on the others until it",
            "  expires.",
        ]
    if "users" in urls:
        lines += [
            "",
            f"admin: {admin.email} / {admin.password}; a token:",
            f"  TOKEN=$(curl -s -X POST {urls['users']}/auth/token -H 'Content-Type: application/json' \\",
            f'    -d \'{{"email": "{admin.email}", "password": "{admin.password}"}}\' \\',
            "    | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"access_token\"])')",
            f'  curl -s {urls["users"]}/users/me -H "Authorization: Bearer $TOKEN"',
        ]
    return "\n".join(lines)
