"""Run Starling's services as real processes on loopback, the way an operator would.

The developer loop (`nox -s serve`), the benchmarks, the soak and the fault runs all need the same
thing: start each service under uvicorn with its own environment, know when it is ready (its
`/health` answers 200), and stop every process on the way out, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

DEFAULT_PORTS = {"users": 8001, "agents": 8002, "reporting": 8003}
# `nox -s serve` on other ports: "users=18001,agents=18002" (services not named keep their default).
PORTS_VARIABLE = "STARLING_SERVE_PORTS"
# What stops a served set of services: Ctrl-C (SIGINT), `kill` or a supervisor (SIGTERM), and the
# terminal closing (SIGHUP).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# For load, benchmarks and fuzzing: high enough that a 429 never stands in for the answer being tested.
UNLIMITED_RATE = "1000000/minute"


@dataclass(frozen=True)
class Service:
    """One service to run: its short name, port and environment (on top of the parent's)."""

    name: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def app(self) -> str:
        return f"starling_{self.name}.main:app"


@dataclass
class Running:
    """A started service: its process, and where it answers."""

    service: Service
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return self.service.url

    @property
    def pid(self) -> int:
        return self.process.pid


def command(service: Service, *, python: str = sys.executable) -> list[str]:
    return [python, "-m", "uvicorn", service.app, "--host", service.host, "--port", str(service.port)]


def start(
    service: Service,
    *,
    python: str = sys.executable,
    cwd: Path | None = None,
    argv: Sequence[str] | None = None,
    quiet: bool = False,
) -> Running:
    """Start one service (not waiting for it); `argv` replaces the default uvicorn command line."""
    env = {**os.environ, **service.env}
    output = subprocess.DEVNULL if quiet else None
    process = subprocess.Popen(
        list(argv) if argv is not None else command(service, python=python),
        cwd=cwd,
        env=env,
        stdout=output,
        stderr=output,
    )
    return Running(service, process)


def wait_healthy(running: Sequence[Running], *, timeout: float = 20.0) -> float:
    """Poll every service's `/health` until all answer 200; returns the seconds it took.

    Raises RuntimeError naming the service when a process exits first or the deadline passes.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = list(running)
    with httpx.Client(timeout=2.0) as client:
        while pending:
            for item in list(pending):
                if item.process.poll() is not None:
                    code = item.process.returncode
                    raise RuntimeError(f"{item.service.name} exited with code {code} before it was healthy")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{item.url}/health").status_code == 200:
                        pending.remove(item)
            if not pending:
                break
            if time.monotonic() > deadline:
                names = ", ".join(item.service.name for item in pending)
                raise RuntimeError(f"not healthy within {timeout:.0f} s: {names}")
            time.sleep(0.05)
    return time.monotonic() - started


def stop(running: Sequence[Running], *, timeout: float = 10.0) -> None:
    """Ask every process to stop (SIGINT, as Ctrl-C would), then kill what is still there."""
    for item in running:
        if item.process.poll() is None:
            item.process.send_signal(signal.SIGINT)
    for item in running:
        try:
            item.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            item.process.kill()
            item.process.wait()


def kill(item: Running) -> None:
    """Kill a service without letting it clean up, as a crash or an OOM kill would."""
    item.process.kill()
    item.process.wait()


@contextlib.contextmanager
def running(
    services: Sequence[Service],
    *,
    python: str = sys.executable,
    cwd: Path | None = None,
    timeout: float = 20.0,
    quiet: bool = False,
) -> Iterator[list[Running]]:
    """Start the services, wait until all are healthy, and stop them all when the block ends."""
    started: list[Running] = []
    try:
        for service in services:
            started.append(start(service, python=python, cwd=cwd, quiet=quiet))
        wait_healthy(started, timeout=timeout)
        yield started
    finally:
        stop(started)


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


class StopSignals:
    """SIGINT, SIGTERM and SIGHUP all raised as KeyboardInterrupt, so one `finally` handles each.

    Python turns only SIGINT into KeyboardInterrupt; SIGTERM and SIGHUP end it at once, skipping every
    `finally`, and the services it started live on, orphaned and holding their ports. Inside
    `with StopSignals() as signals:` all three raise KeyboardInterrupt (the previous handlers come back
    at the end). Two narrower blocks guard the moments a signal must not cut short:
    `signals.deferred()` raises a signal that arrived inside it only when it ends (a child started but
    not yet recorded would be missed by the stop), and `signals.ignored()` drops them (the stop is
    already under way; stop() kills what does not exit in time, so the block is bounded).
    """

    def __init__(self, signals: Sequence[signal.Signals] = STOP_SIGNALS) -> None:
        self.signals = tuple(signals)
        self._previous: dict[signal.Signals, Any] = {}
        self._deferring = 0
        self._ignoring = 0
        self._pending: signal.Signals | None = None

    def __enter__(self) -> StopSignals:
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._ignoring:
            return
        if self._deferring:
            self._pending = signal.Signals(signum)
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring += 1
        try:
            yield
        finally:
            self._deferring -= 1
        if not self._deferring and self._pending is not None:
            pending, self._pending = self._pending, None
            raise KeyboardInterrupt(pending.name)

    @contextlib.contextmanager
    def ignored(self) -> Iterator[None]:
        self._ignoring += 1
        try:
            yield
        finally:
            self._ignoring -= 1
            self._pending = None


def run_until_stopped(
    services: Sequence[Service],
    *,
    signals: StopSignals,
    python: str = sys.executable,
    cwd: Path | None = None,
    timeout: float = 20.0,
    ready: Callable[[list[Running], float], None] | None = None,
) -> None:
    """Serve until Ctrl-C, SIGTERM or SIGHUP (or until every service exits), then stop them all.

    `ready(started, seconds)` runs once every service is healthy. Every child is stopped on the way
    out, whichever of the three signals came and whatever `ready` or the start raised.
    """
    started: list[Running] = []
    try:
        for service in services:
            with signals.deferred():
                started.append(start(service, python=python, cwd=cwd))
        took = wait_healthy(started, timeout=timeout)
        if ready is not None:
            ready(started, took)
        for item in started:
            item.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop_shielded(started, signals)


def stop_shielded(running: Sequence[Running], signals: StopSignals) -> None:
    """stop() with the stop signals dropped meanwhile; one landing just before that starts it again."""
    while True:
        try:
            with signals.ignored():
                stop(running)
            return
        except KeyboardInterrupt:
            continue


def sqlite_env(name: str, data_dir: Path) -> dict[str, str]:
    """The environment that gives service `name` its own SQLite file under `data_dir`."""
    return {f"STARLING_{name.upper()}_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / name}.db"}
