"""`python -m starling_core.serve`: real processes on loopback, spoken to over real HTTP."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from pathlib import Path

import httpx
import pytest
import uvicorn
from starlette.types import Receive, Scope, Send
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from starling_core.protocol import GuardedH11Protocol
from starling_core.serve import DEFAULT_CONCURRENCY, listening_socket, parse_args

DEADLINE = 30.0
MIGRATIONS = Path(__file__).parent / "migrations_fixture"
SERVING = re.compile(r"on http://127\.0\.0\.1:(\d+) with")

PID_APP = """
import os
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

app = Starlette(routes=[Route("/pid", lambda request: PlainTextResponse(str(os.getpid())))])
"""

# A limited route on a migrated SQLite file that every child shares. Every answer, a 429 from the
# limiter included, names the child that gave it in `X-Pid`.
COUNTED_APP = """
import os
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from pathlib import Path
from starling_core.app import create_app
from starling_core.settings import ServiceSettings

class Settings(ServiceSettings):
    service_name: str = "counted"

counted = create_app(
    Settings(database_url="sqlite+aiosqlite:///counted.db"),
    routes=[Route("/api/pid", lambda request: PlainTextResponse(str(os.getpid())))],
    migrations=Path({scripts!r}),
)
PID = str(os.getpid()).encode()

async def app(scope, receive, send):
    async def send_with_pid(message):
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"x-pid", PID)]
        await send(message)
    await counted(scope, receive, send_with_pid)
"""

FAILING_APP = """
raise RuntimeError("this app cannot be imported")
"""


class Served:
    """A `serve` process started on port 0; the port is read from its "Serving ..." line."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self._port: int | None = None

    @property
    def url(self) -> str:
        if self._port is None:
            self._port = self._wait_for_port()
        return f"http://127.0.0.1:{self._port}/pid"

    def _wait_for_port(self) -> int:
        deadline = time.monotonic() + DEADLINE
        while (found := SERVING.search(self.log.read_text())) is None:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"serve did not start within {DEADLINE} s:\n{self.log.read_text()}")
            time.sleep(0.05)
        return int(found.group(1))

    def pid_of_next_connection(self) -> int | None:
        """The pid of the child answering a new connection; None while nothing answers."""
        try:
            # A client per request: each new connection is spread anew by the kernel.
            with httpx.Client(timeout=5.0) as client:
                return int(client.get(self.url).text)
        except httpx.TransportError:
            return None

    def wait_for_pids(self, count: int, *, excluding: AbstractSet[int] = frozenset()) -> set[int]:
        """Poll new connections until `count` children not in `excluding` have answered."""
        seen: set[int] = set()
        deadline = time.monotonic() + DEADLINE
        while len(seen - excluding) < count:
            if self.process.poll() is not None:
                pytest.fail(f"serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"saw only {seen} within {DEADLINE} s:\n{self.log.read_text()}")
            pid = self.pid_of_next_connection()
            if pid is not None:
                seen.add(pid)
        return seen - excluding

    def wait_until_refused(self) -> None:
        deadline = time.monotonic() + DEADLINE
        while self.pid_of_next_connection() is not None:
            if time.monotonic() > deadline:
                pytest.fail(f"{self.url} still answers after {DEADLINE} s")


def start(directory: Path, app: str, *args: str, env: dict[str, str] | None = None) -> Served:
    log = directory / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "starling_core.serve", app, "--port", "0", "--no-access-log", *args],
            cwd=directory,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    return Served(process, log)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    server = start(tmp_path, "pidapp:app", "--processes", "2")
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait()


def test_two_processes_answer_on_one_port(served: Served) -> None:
    pids = served.wait_for_pids(2)

    assert len(pids) == 2
    assert served.process.pid not in pids


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_stops_every_child_and_exits_0(served: Served, stop_signal: signal.Signals) -> None:
    served.wait_for_pids(2)

    served.process.send_signal(stop_signal)

    assert served.process.wait(timeout=DEADLINE) == 0
    assert served.pid_of_next_connection() is None


def test_a_child_that_dies_is_replaced(served: Served) -> None:
    first = served.wait_for_pids(2)
    victim = min(first)

    subprocess.run(["kill", "-KILL", str(victim)], check=True)
    replacement = served.wait_for_pids(1, excluding=first)

    assert victim not in replacement
    assert served.process.poll() is None
    assert "starting another" in served.log.read_text()


def test_children_stop_when_the_parent_is_killed(served: Served) -> None:
    served.wait_for_pids(2)

    served.process.kill()
    served.process.wait()

    served.wait_until_refused()


def test_processes_share_one_rate_limit_count(tmp_path: Path) -> None:
    # 40 new connections, which the kernel spreads over both children: they count in the database,
    # so 5 get through in all, where per-process memory would let 5 through each child.
    (tmp_path / "counted.py").write_text(COUNTED_APP.format(scripts=str(MIGRATIONS)))
    env = {
        "STARLING_RATE_LIMIT": "5/day",
        "PYTHONPATH": str(MIGRATIONS.parents[1]),  # the migration scripts import tests.itemsapp
    }
    server = start(tmp_path, "counted:app", "--processes", "2", env=env)
    try:
        base = server.url.removesuffix("/pid")
        answers = []
        for _ in range(40):
            with httpx.Client(timeout=5.0) as client:
                answers.append(client.get(f"{base}/api/pid"))
    finally:
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=DEADLINE)

    assert len({response.headers["x-pid"] for response in answers}) == 2  # both children answered
    assert [response.status_code for response in answers].count(200) == 5
    assert {response.status_code for response in answers} == {200, 429}


def test_an_app_failing_at_start_up_stops_the_server_with_status_1(tmp_path: Path) -> None:
    (tmp_path / "failing.py").write_text(FAILING_APP)

    server = start(tmp_path, "failing:app", "--processes", "2")

    assert server.process.wait(timeout=DEADLINE) == 1
    assert "during start-up" in server.log.read_text()


def test_a_port_already_in_use_is_refused(tmp_path: Path) -> None:
    (tmp_path / "pidapp.py").write_text(PID_APP)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        process = subprocess.run(
            [sys.executable, "-m", "starling_core.serve", "pidapp:app", "--port", str(port)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=DEADLINE,
            check=False,
        )

    assert process.returncode == 1
    assert "cannot serve" in process.stderr


async def test_connections_accepted_from_the_socket_get_tcp_nodelay() -> None:
    assert await nodelay_of_accepted_connection(listening_socket("127.0.0.1", 0)) == 1


async def test_uvicorns_shared_socket_loses_tcp_nodelay() -> None:
    # What `uvicorn --workers` binds (uvicorn issue 3149): the reason this module exists.
    sock = socket.socket(family=socket.AF_INET)
    sock.bind(("127.0.0.1", 0))

    assert await nodelay_of_accepted_connection(sock) == 0


async def nodelay_of_accepted_connection(sock: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(
            writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
        writer.close()

    server = await asyncio.start_server(on_connection, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, DEADLINE)
        finally:
            writer.close()
            await writer.wait_closed()


@pytest.mark.parametrize("argv", [["app:app", "--processes", "0"], ["app:app", "--port", "70000"], []])
def test_bad_arguments_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)

    assert exited.value.code == 2


def test_arguments_become_the_config() -> None:
    config = parse_args(["svc.main:app", "--host", "0.0.0.0", "--port", "8001", "--processes", "3"])

    assert (config.app, config.host, config.port, config.processes) == ("svc.main:app", "0.0.0.0", 8001, 3)


def test_children_cut_off_slow_heads_and_cap_their_connections() -> None:
    options = parse_args(["starling_users.main:app"]).uvicorn_options
    assert options["http"] is GuardedH11Protocol
    assert options["limit_concurrency"] == DEFAULT_CONCURRENCY
    assert parse_args(["a:b", "--limit-concurrency", "50"]).uvicorn_options["limit_concurrency"] == 50


def test_children_log_in_cores_format_with_cores_access_log_in_place_of_uvicorns() -> None:
    options = parse_args(["a:b", "--no-access-log"]).uvicorn_options

    assert options["access_log"] is False  # uvicorn's: it prints raw paths, query strings and all
    assert options["log_config"]["loggers"]["starling.access"]["level"] == "WARNING"
    assert parse_args(["a:b"]).uvicorn_options["log_config"]["loggers"]["starling.access"]["level"] == "INFO"


async def test_children_refuse_a_websocket_message_over_64_kib() -> None:
    # No Starling socket takes more from its client than a close; uvicorn's default let each message
    # grow to 16 MiB, and queued 32 of them per connection.
    async def echo(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message["text"]})

    options = parse_args(["a:b"]).uvicorn_options
    served_options = {key: value for key, value in options.items() if not key.startswith(("log", "access"))}
    server = uvicorn.Server(
        uvicorn.Config(echo, host="127.0.0.1", port=0, log_level="warning", **served_options)
    )
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(DEADLINE):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers a flag, no event, for "started"
                await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as websocket:
            await websocket.send("small")
            assert await websocket.recv() == "small"
            await websocket.send("x" * (65 * 1024))
            with pytest.raises(ConnectionClosed) as closed:
                await websocket.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1009  # message too big
    finally:
        server.should_exit = True
        await task
