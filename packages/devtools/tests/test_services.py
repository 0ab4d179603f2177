"""Starting, waiting for and stopping real processes (a tiny HTTP server stands in for a service)."""

from __future__ import annotations

import socket
import sys

import pytest

from starling_devtools.services import Service, kill, start, stop, wait_healthy

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


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


def test_a_service_knows_its_url_app_and_command() -> None:
    service = Service("users", 8001, {"STARLING_USERS_ADMIN_EMAIL": "a@example.com"})

    assert service.url == "http://127.0.0.1:8001"
    assert service.app == "starling_users.main:app"
