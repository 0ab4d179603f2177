"""Service processes: started the way production runs them, waited for, and stopped whatever happens.

Each service runs under `python -m starling_core.serve` (core's guarded HTTP protocol, its logging and
its access log), one process unless asked for more. Ready means `/health` answers 200. Stopping is
SIGINT, as Ctrl-C; whatever is left after the grace period is killed, children first.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil

# What stops a run: Ctrl-C (SIGINT), `kill` or a supervisor (SIGTERM), the terminal closing (SIGHUP).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Service:
    """One service to run: its name, port and environment (on top of the parent's)."""

    name: str
    port: int
    env: Mapping[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    processes: int = 1
    quiet: bool = False  # no access log, warnings and worse only

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

    def tree(self) -> list[psutil.Process]:
        """The process and every descendant (serve's children): what a memory figure or a kill covers."""
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(self.pid)
            return [parent, *parent.children(recursive=True)]
        return []

    def rss(self) -> int:
        total = 0
        for process in self.tree():
            with contextlib.suppress(psutil.Error):
                total += int(process.memory_info().rss)
        return total


def command(service: Service, *, python: str = sys.executable) -> list[str]:
    argv = [python, "-m", "starling_core.serve", service.app, "--host", service.host]
    argv += ["--port", str(service.port), "--processes", str(service.processes)]
    return argv + (["--no-access-log", "--log-level", "warning"] if service.quiet else [])


def start(
    service: Service,
    *,
    python: str = sys.executable,
    cwd: Path | None = None,
    log: Path | None = None,
    argv: Sequence[str] | None = None,
) -> Running:
    """Start one service (not waiting for it), its output appended to `log` or to ours."""
    with contextlib.ExitStack() as files:
        output = files.enter_context(log.open("ab")) if log is not None else None
        process = subprocess.Popen(
            list(argv) if argv is not None else command(service, python=python),
            cwd=cwd,
            env={**os.environ, **service.env},
            stdout=output,
            stderr=output,
        )
    return Running(service, process)


def wait_healthy(running: Sequence[Running], *, timeout: float = 60.0) -> float:
    """Poll every service's `/health` until all answer 200; returns the seconds it took.

    Raises RuntimeError naming the service when a process exits first or the deadline passes.
    """
    started = time.monotonic()
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
            if pending and time.monotonic() - started > timeout:
                names = ", ".join(item.service.name for item in pending)
                raise RuntimeError(f"not healthy within {timeout:.0f} s: {names}")
            time.sleep(0.05 if pending else 0)
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
            kill(item)


def kill(item: Running) -> None:
    """SIGKILL the service and its children at once, as a crash or an OOM kill would end them."""
    for process in reversed(item.tree()):
        with contextlib.suppress(psutil.Error):
            process.kill()
    item.process.wait()


async def wait_for(
    condition: Callable[[], bool | Awaitable[bool]], *, within: float, interval: float = 0.05
) -> bool:
    """Poll `condition` (a plain or an async predicate) until it holds (True) or `within` seconds pass
    (False)."""
    deadline = time.monotonic() + within
    while not await _holds(condition()):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(interval)
    return True


async def _holds(answer: bool | Awaitable[bool]) -> bool:
    return await answer if inspect.isawaitable(answer) else answer


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
        self._depth: Counter[str] = Counter()  # how many `deferred` and `ignored` blocks we are in
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
        if self._depth["ignored"]:
            return
        if self._depth["deferred"]:
            self._pending = signal.Signals(signum)
            return
        raise KeyboardInterrupt(signal.Signals(signum).name)

    @contextlib.contextmanager
    def _inside(self, block: str) -> Iterator[None]:
        self._depth[block] += 1
        try:
            yield
        finally:
            self._depth[block] -= 1

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        with self._inside("deferred"):
            yield
        if not self._depth["deferred"] and self._pending is not None:
            pending, self._pending = self._pending, None
            raise KeyboardInterrupt(pending.name)

    @contextlib.contextmanager
    def ignored(self) -> Iterator[None]:
        try:
            with self._inside("ignored"):
                yield
        finally:
            self._pending = None


def stop_shielded(running: Sequence[Running], signals: StopSignals) -> None:
    """stop() with the stop signals dropped meanwhile; one landing just before that starts it again."""
    while True:
        try:
            with signals.ignored():
                stop(running)
            return
        except KeyboardInterrupt:
            continue
