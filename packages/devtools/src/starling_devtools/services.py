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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

DEFAULT_PORTS = {"users": 8001, "agents": 8002, "reporting": 8003}
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


def sqlite_env(name: str, data_dir: Path) -> dict[str, str]:
    """The environment that gives service `name` its own SQLite file under `data_dir`."""
    return {f"STARLING_{name.upper()}_DATABASE_URL": f"sqlite+aiosqlite:///{data_dir / name}.db"}
