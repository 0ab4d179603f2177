"""The harness: which services exist and where, their environment, tokens, and their processes started,
waited for and stopped for real (a tiny HTTP server stands in for a service)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from starling_core.tokens import JWTConfig, decode_token
from starling_devtools import harness
from starling_devtools.harness.discovery import DEVELOPMENT_BASE, assign_ports, free_port
from starling_devtools.harness.environment import FAST_PASSWORDS, UNLIMITED_RATE, Admin, Environment
from starling_devtools.harness.processes import Service, command, kill, start, stop, wait_healthy

# answers 200 on /health and 404 elsewhere, like a service that is up
HEALTH_SERVER = """
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
    def log_message(self, *args):
        pass
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def test_a_started_service_is_waited_for_and_stopped() -> None:
    service = Service("fake", free_port())
    running = start(service, argv=[sys.executable, "-c", HEALTH_SERVER, str(service.port)])
    try:
        took = wait_healthy([running], timeout=20)
        assert took >= 0
        assert running.process.poll() is None
    finally:
        stop([running])

    assert running.process.returncode is not None


def test_a_service_that_exits_early_is_named() -> None:
    running = start(Service("broken", free_port()), argv=[sys.executable, "-c", "raise SystemExit(3)"])

    with pytest.raises(RuntimeError, match="broken exited with code 3"):
        wait_healthy([running], timeout=20)


def test_a_service_that_never_answers_is_named_at_the_deadline() -> None:
    # alive but never listening
    running = start(
        Service("silent", free_port()), argv=[sys.executable, "-c", "import time; time.sleep(60)"]
    )
    try:
        with pytest.raises(RuntimeError, match="not healthy within 1 s: silent"):
            wait_healthy([running], timeout=1)
    finally:
        kill(running)
    assert running.process.returncode is not None


def test_a_service_runs_as_production_runs_it() -> None:
    service = Service("users", 8001, {"STARLING_USERS_ADMIN_EMAIL": "a@example.com"})

    assert service.url == "http://127.0.0.1:8001"
    assert command(service, python="py") == [
        "py", "-m", "starling_core.serve", "starling_users.main:app", "--host", "127.0.0.1",
        "--port", "8001", "--processes", "1",
    ]  # fmt: skip
    assert command(Service("users", 1, quiet=True))[-3:] == ["--no-access-log", "--log-level", "warning"]


def test_every_service_of_the_workspace_is_found_with_its_port(repo_root: Path) -> None:
    found = harness.discover(repo_root)

    assert {"users", "agents", "reporting", "assessments"} <= found.keys()
    assert (found["users"].port, found["assessments"].port) == (8001, 8004)
    assert found["assessments"].offset == 4
    assert (found["reporting"].source / "starling_reporting" / "main.py").is_file()


def test_ports_are_a_base_plus_each_offset_or_free_or_the_services_own(repo_root: Path) -> None:
    found = harness.discover(repo_root)

    assert assign_ports(found, None)["users"] == 8001
    assert assign_ports(found, 19200)["users"] == 19201
    assert assign_ports(found, 19200)["assessments"] == 19200 + 8004 - DEVELOPMENT_BASE
    free = assign_ports(found, 0)
    assert len(set(free.values())) == len(found)


def test_a_tools_environment_links_the_services_and_lifts_the_limits() -> None:
    environment = Environment(
        {"users": "http://u", "agents": "http://a"}, secret="s" * 40, bootstrap="127.0.0.1:9", admin=Admin()
    )

    users = environment.env("users", "sqlite+aiosqlite:///u.db")
    agents = environment.env("agents")

    assert users["STARLING_USERS_AGENTS_URL"] == "http://a"
    assert users["STARLING_USERS_DATABASE_URL"] == "sqlite+aiosqlite:///u.db"
    assert users["STARLING_USERS_ADMIN_EMAIL"] == Admin().email
    assert FAST_PASSWORDS.items() <= users.items()
    assert agents["STARLING_AGENTS_USERS_URL"] == "http://u"
    assert "STARLING_AGENTS_DATABASE_URL" not in agents
    assert not any(key.startswith("STARLING_USERS_PASSWORD") for key in agents)
    for env in (users, agents):
        assert env["STARLING_RATE_LIMIT"] == UNLIMITED_RATE  # a 429 never hides the answer tested
        assert env["STARLING_JWT_SECRET"] == "s" * 40
        assert env["STARLING_KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9"


def test_the_developer_loop_keeps_the_services_defaults() -> None:
    env = Environment({"users": "http://u"}, tool=False).env("users")

    assert "STARLING_RATE_LIMIT" not in env
    assert "STARLING_JWT_SECRET" not in env
    assert not FAST_PASSWORDS.keys() & env.keys()


def test_a_minted_token_is_signed_with_the_runs_secret() -> None:
    environment = Environment({}, secret="t" * 40)

    claims = decode_token(
        JWTConfig("t" * 40, "t" * 40, "starling-users"), environment.mint("u-1", ["a:read"])
    )

    assert (claims.sub, claims.scopes) == ("u-1", frozenset({"a:read"}))


def test_the_scopes_of_a_document_are_every_operations() -> None:
    document = {
        "paths": {
            "/a": {
                "get": {"security": [{"bearer": ["a:read"]}]},
                "post": {"security": [{"bearer": ["a:admin"]}]},
            },
            "/health": {"get": {}},
        }
    }

    assert harness.declared_scopes(document) == {"a:read", "a:admin"}
