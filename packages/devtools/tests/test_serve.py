"""`nox -s serve` for real: once its services answer, SIGTERM to nox stops every process it started and
frees every port, as Ctrl-C does; and the signals' handling itself, in process.

SIGHUP takes the same path as SIGTERM (one handler for SIGINT, SIGTERM and SIGHUP, proved per signal
below), so the whole run with every service is made once, for SIGTERM: a second one, for SIGHUP, cost
the README's test command some 11 s and 8 CPU s and proved nothing the handler's test does not.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from starling_devtools import harness, workspace
from starling_devtools.harness import Admin, processes
from starling_devtools.harness.processes import Service, StopSignals
from starling_devtools.services import PORTS_VARIABLE, banner, parse_ports, ungranted, ungranted_warning

# the first run of a checkout creates the serve venv; on 2 busy cores that can take a while
START_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """Whether a server could listen on the port now (with SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def in_group(group: int) -> list[psutil.Process]:
    """Every live process of a process group (nox is started as the leader of its own)."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            if os.getpgid(process.pid) == group and process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


def alive(process: psutil.Process) -> bool:
    """Running, not merely a zombie: an orphan's exit waits for PID 1 to reap it, which some do late."""
    with contextlib.suppress(psutil.Error):
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    return False


def poll(condition: Callable[[], bool], *, timeout: float, what: Callable[[], str]) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f} s: {what()}")
        time.sleep(0.1)


@contextlib.contextmanager
def nox_serve(
    repo_root: Path, ports: dict[str, int], data: Path, log: Path, kafka_port: int
) -> Iterator[subprocess.Popen[bytes]]:
    """`nox -s serve` on these ports and databases, in its own process group, killed whole if left."""
    env = {**os.environ, PORTS_VARIABLE: ",".join(f"{name}={port}" for name, port in ports.items())}
    env["STARLING_SERVE_KAFKA_PORT"] = str(kafka_port)
    env.pop("STARLING_KAFKA_BOOTSTRAP_SERVERS", None)
    for name in ports:
        env[f"STARLING_{name.upper()}_DATABASE_URL"] = f"sqlite+aiosqlite:///{data / name}.db"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "nox", "-f", str(repo_root / "noxfile.py"), "-s", "serve"],
            cwd=repo_root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        # whatever the test found, nothing of this run outlives it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def answering(ports: dict[str, int]) -> bool:
    with httpx.Client(timeout=2.0) as client:
        for port in ports.values():
            try:
                if client.get(f"http://127.0.0.1:{port}/health").status_code != 200:
                    return False
            except httpx.TransportError:
                return False
    return True


def test_sigterm_to_nox_serve_stops_every_service_and_frees_every_port(
    repo_root: Path, tmp_path: Path
) -> None:
    signum = signal.SIGTERM
    names = sorted(name for name, member in workspace.load(repo_root).items() if member.is_service)
    ports = {name: free_port() for name in names}
    kafka_port = free_port()
    log = tmp_path / "serve.log"

    with nox_serve(repo_root, ports, tmp_path, log, kafka_port) as nox:

        def started() -> bool:
            if nox.poll() is not None:
                pytest.fail(f"nox -s serve exited with {nox.returncode}:\n{log.read_text()}")
            return "services healthy" in log.read_text() and answering(ports)

        poll(started, timeout=START_TIMEOUT, what=lambda: f"the services did not answer:\n{log.read_text()}")
        children = psutil.Process(nox.pid).children(recursive=True)
        # each service as production runs it: starling_core.serve, supervising one uvicorn child
        served = [child for child in children if "starling_core.serve" in child.cmdline()]
        assert len(served) == len(names), [child.cmdline() for child in children]
        assert all(parent.children() for parent in served)
        # the services run in a venv holding them and what they need, not the test tools
        python = served[0].cmdline()[0]
        for module in ("pytest", "starling_testkit", "starling_devtools"):
            found = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
            assert found.returncode != 0, f"{module} is installed in {python}"

        # the dev loop runs a real broker beside the services, and stops it with them
        assert f"Kafka-protocol broker (Tansu) on 127.0.0.1:{kafka_port}" in log.read_text()
        assert not port_is_free(kafka_port)

        nox.send_signal(signum)

        assert nox.wait(timeout=STOP_TIMEOUT) == 0, log.read_text()
        poll(
            lambda: not in_group(nox.pid),
            timeout=STOP_TIMEOUT,
            what=lambda: f"left running: {[p.cmdline() for p in in_group(nox.pid)]}",
        )
        every_port = [*ports.values(), kafka_port]
        poll(
            lambda: all(map(port_is_free, every_port)),
            timeout=STOP_TIMEOUT,
            what=lambda: f"still taken: {[port for port in every_port if not port_is_free(port)]}",
        )
        assert not [child.pid for child in children if alive(child)]
        assert "all services stopped" in log.read_text()


# --- the signals, in this process -----------------------------------------------------------------


@pytest.mark.parametrize(
    "signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"]
)
def test_each_stop_signal_is_a_keyboard_interrupt_inside_and_nothing_new_after(
    signum: signal.Signals,
) -> None:
    before = signal.getsignal(signum)

    with StopSignals(), pytest.raises(KeyboardInterrupt, match=signum.name):
        signal.raise_signal(signum)

    assert signal.getsignal(signum) is before


def test_a_deferred_signal_is_raised_when_the_block_ends() -> None:
    reached = []

    def defer(signals: StopSignals) -> None:
        with signals.deferred():
            signal.raise_signal(signal.SIGTERM)
            reached.append("after the signal")
        reached.append("after the block")

    with StopSignals() as signals, pytest.raises(KeyboardInterrupt, match="SIGTERM"):
        defer(signals)

    assert reached == ["after the signal"]


def test_an_ignored_signal_is_dropped_even_inside_a_deferred_block() -> None:
    with StopSignals() as signals:
        with signals.deferred(), signals.ignored():
            signal.raise_signal(signal.SIGHUP)
        with signals.deferred():
            pass  # nothing pending from before


def test_a_signal_while_a_child_is_recorded_still_stops_every_child(monkeypatch: pytest.MonkeyPatch) -> None:
    # no real service: `python -c` stands in, alive until it is told to stop (it never answers /health)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    services = {name: Service(name, free_port()) for name in ("one", "two")}
    stack = harness.Stack(harness.Environment({}), harness.Databases({}), services, {})
    real_start = processes.start
    seen: list[psutil.Process] = []

    def start(service: Service, **kwargs: object) -> processes.Running:
        running = real_start(service, argv=sleeper)
        seen.append(psutil.Process(running.pid))
        if len(seen) == len(services):
            signal.raise_signal(signal.SIGTERM)  # started, not yet in the stack's record
        return running

    monkeypatch.setattr(processes, "start", start)

    with StopSignals() as signals:
        try:
            stack.start(list(services), signals=signals)
        except KeyboardInterrupt:
            pass
        finally:
            processes.stop_shielded(list(stack.running.values()), signals)

    assert len(seen) == 2
    assert not any(alive(process) for process in seen)


def test_the_banner_says_where_the_events_go_and_what_no_broker_costs() -> None:
    urls = {"users": "http://127.0.0.1:8001", "inventory": "http://127.0.0.1:8005"}
    admin = Admin("admin@starling.dev", "starling-admin")

    with_broker = banner(urls, admin, 9.0, "127.0.0.1:9092")
    without = banner(urls, admin, 9.0, None)

    assert "events: the Kafka-protocol broker at 127.0.0.1:9092" in with_broker
    assert "NO BROKER" not in with_broker
    assert "events: NO BROKER" in without
    assert "still works on the others until it" in without
    assert "  inventory  http://127.0.0.1:8005" in without


def test_scopes_no_administrator_holds_are_named_with_how_to_grant_them() -> None:
    # what a login grants, against what each document asks for: inventory's are granted to nobody yet
    documents = {
        "users": {"/users": {"get": {"security": [{"bearer": ["users:admin"]}]}}},
        "inventory": {
            "/api/v1/items": {
                "get": {"security": [{"bearer": ["inventory:read"]}]},
                "post": {"security": [{"bearer": ["inventory:admin"]}]},
            },
            "/health": {"get": {}},
        },
    }

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/auth/token":
            assert json.loads(request.content) == {"email": "a@example.com", "password": "pw"}
            return httpx.Response(200, json={"access_token": "t", "scope": "users:admin agent:read"})
        return httpx.Response(200, json={"paths": documents[request.url.host]})

    urls = {"users": "http://users", "inventory": "http://inventory"}
    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        missing = ungranted(client, urls, Admin("a@example.com", "pw"))

    assert missing == {"inventory": ["inventory:admin", "inventory:read"]}
    warning = ungranted_warning(missing)
    assert "inventory: inventory:admin, inventory:read" in warning
    assert "STARLING_USERS_ROLE_SCOPES" in warning


def test_ports_are_read_as_name_equals_port() -> None:
    assert parse_ports("") == {}
    assert parse_ports("users=18001, agents=18002,") == {"users": 18001, "agents": 18002}
    for wrong in ("users", "users=", "=18001", "users=port", "users=70000"):
        with pytest.raises(ValueError, match=PORTS_VARIABLE):
            parse_ports(wrong)
