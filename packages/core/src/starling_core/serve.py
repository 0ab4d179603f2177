"""Serve an app from several uvicorn processes, each accepting on its own `SO_REUSEPORT` socket.

    python -m starling_core.serve starling_users.main:app --host 127.0.0.1 --port 8001 --processes 2

Why not `uvicorn --workers N`: its parent binds one socket as `socket.socket(AF_INET)`, whose protocol
number is 0, and asyncio sets TCP_NODELAY only on connections accepted from an `IPPROTO_TCP` socket.
Every keep-alive response then waits for the client's delayed ACK (uvicorn issue 3149), and two
workers serve fewer requests than one. Here each child binds its own `IPPROTO_TCP` socket, so its
connections get TCP_NODELAY exactly as a single uvicorn's do, and `SO_REUSEPORT` lets the kernel
spread new connections evenly across the children; on a shared socket the first process to wake can
take every connection of a keep-alive client. `SO_REUSEPORT` balances this way on Linux only, and
only between sockets of one user.

The parent only supervises. It checks that the port is free and keeps it reserved (a bound socket
that never listens), starts the children one after another so that a service's start-up work
(migrations, the first admin) never races with itself, replaces a child that dies after it was
serving, and on SIGINT or SIGTERM stops every child gracefully. A child that fails during start-up
stops the whole server with status 1, since a replacement would fail the same way. A child whose
parent disappears (even by SIGKILL) stops by itself.

Each process has its own memory, so an in-memory rate limiter would let a caller through N times
the limit. With more than one process, the children count in the service's database
(`STARLING_RATE_LIMIT_BACKEND=database`) unless that variable says otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from starling_core import logs
from starling_core.protocol import GuardedH11Protocol

logger = logging.getLogger("uvicorn.error")

STOP_TIMEOUT = 30.0
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) that other processes of this user can bind too."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP rather than the default 0: asyncio checks `sock.proto` before it sets TCP_NODELAY
    # on accepted connections, and the accepted sockets inherit the listener's protocol number.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def reserve_port(host: str, port: int) -> socket.socket:
    """Hold (host, port) for the children; raises OSError when anything already uses it.

    The first bind is exclusive, so a port served by another server, even one using SO_REUSEPORT,
    is refused rather than silently shared; `port` 0 picks a free port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
        chosen: int = probe.getsockname()[1]
    # Bound and never listening: the kernel hands connections only to listening sockets.
    return listening_socket(host, chosen)


@dataclass(frozen=True)
class ServeConfig:
    app: str
    host: str = "127.0.0.1"
    port: int = 8000
    processes: int = 1
    uvicorn_options: dict[str, Any] = field(default_factory=dict)


class _ChildServer(uvicorn.Server):
    """uvicorn's server, telling the parent once it serves and stopping if the parent goes away."""

    def __init__(self, config: uvicorn.Config, parent: Connection) -> None:
        super().__init__(config)
        self.parent = parent

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.parent.send(os.getpid())
            threading.Thread(target=self._exit_with_parent, name="starling-parent-watch", daemon=True).start()

    def _exit_with_parent(self) -> None:
        # The parent never writes after start-up: recv() returns only by EOF, when its end is closed.
        with contextlib.suppress(EOFError, OSError):
            self.parent.recv()
        self.should_exit = True


def _child_main(config: ServeConfig, port: int, parent: Connection) -> None:
    sock = listening_socket(config.host, port)
    server = _ChildServer(
        uvicorn.Config(config.app, host=config.host, port=port, **config.uvicorn_options), parent
    )
    server.run(sockets=[sock])


@dataclass
class _Child:
    process: BaseProcess
    conn: Connection  # the parent's end of the child's pipe: "ready" arrives here


class Supervisor:
    """Starts `config.processes` children on one port, replaces those that die, stops them on a signal."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.children: list[_Child] = []
        self.port = config.port
        self._context = multiprocessing.get_context("spawn")
        self._stopping = False
        # The signal handler writes here to wake `wait()`; never blocking, even if nobody reads.
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)

    def run(self) -> int:
        try:
            placeholder = reserve_port(self.config.host, self.config.port)
        except OSError as exc:
            logger.error("cannot serve on %s:%s: %s", self.config.host, self.config.port, exc)
            return 1
        self.port = placeholder.getsockname()[1]
        previous = self._install_signal_handlers()
        try:
            return self._supervise()
        finally:
            self._stop_children()
            self._restore_signal_handlers(previous)
            placeholder.close()
            self._wake_r.close()
            self._wake_w.close()

    def _supervise(self) -> int:
        for _ in range(self.config.processes):
            if (status := self._start_child()) is not None:
                return status
        pids = ", ".join(str(child.process.pid) for child in self.children)
        logger.info(
            "Serving %s on http://%s:%d with %d processes (%s); Ctrl-C stops them",
            self.config.app, self.config.host, self.port, len(self.children), pids,
        )  # fmt: skip
        while True:
            wait([self._wake_r, *(child.process.sentinel for child in self.children)])
            if self._stopping:
                return 0
            for child in [c for c in self.children if not c.process.is_alive()]:
                self.children.remove(child)
                child.conn.close()
                logger.warning(
                    "process %s exited with code %s; starting another",
                    child.process.pid,
                    child.process.exitcode,
                )
                if (status := self._start_child()) is not None:
                    return status

    def _start_child(self) -> int | None:
        """Start one child and wait until it serves (None); else the exit status: 0 stopped, 1 failed."""
        parent_end, child_end = self._context.Pipe()
        process = self._context.Process(
            target=_child_main, args=(self.config, self.port, child_end), name="starling-serve"
        )
        process.start()
        child_end.close()
        self.children.append(_Child(process, parent_end))
        while not self._stopping:
            ready = wait([parent_end, process.sentinel, self._wake_r])
            if parent_end in ready:
                try:
                    parent_end.recv()
                except (EOFError, OSError):
                    pass  # the child closed its end: it is exiting
                else:
                    return None
            if parent_end in ready or process.sentinel in ready:
                process.join()
                logger.error(
                    "process %s exited with code %s during start-up; stopping", process.pid, process.exitcode
                )
                return 1
        return 0

    def _stop_children(self) -> None:
        for child in self.children:
            if child.process.is_alive():
                child.process.terminate()  # SIGTERM: uvicorn finishes in-flight requests, then exits
        for child in self.children:
            child.process.join(STOP_TIMEOUT)
            if child.process.is_alive():
                logger.warning(
                    "process %s did not stop in %.0f s; killing it", child.process.pid, STOP_TIMEOUT
                )
                child.process.kill()
                child.process.join()
            child.conn.close()
        self.children.clear()

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"\0")

    def _install_signal_handlers(self) -> dict[int, Any]:
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    @staticmethod
    def _restore_signal_handlers(previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# Per process: far above what a 2-core process serves at once, low enough that a flood of idle
# connections meets a 503 long before the process runs out of file descriptors or memory.
DEFAULT_CONCURRENCY = 1000
# Bytes one WebSocket message from a client may hold.
WS_MAX_SIZE = 64 * 1024


def parse_args(argv: Sequence[str] | None = None) -> ServeConfig:
    parser = argparse.ArgumentParser(
        prog="python -m starling_core.serve",
        description="Serve an ASGI app from several uvicorn processes sharing one port through SO_REUSEPORT.",
    )
    parser.add_argument("app", help="the app as module:attribute, e.g. starling_users.main:app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default: 8000)")
    parser.add_argument(
        "--processes", type=_positive, default=os.cpu_count() or 1, help="default: one per CPU"
    )
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    parser.add_argument(
        "--no-access-log", dest="access_log", action="store_false", help="no line per request (errors stay)"
    )
    parser.add_argument(
        "--limit-concurrency",
        type=_positive,
        default=DEFAULT_CONCURRENCY,
        help=f"connections and tasks a process takes before answering 503 (default: {DEFAULT_CONCURRENCY})",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    return ServeConfig(
        app=args.app,
        host=args.host,
        port=args.port,
        processes=args.processes,
        uvicorn_options={
            "log_level": args.log_level,
            # Core's logging from the first line on (STARLING_LOG_FORMAT, JSON in production), and core's
            # access log, which names route templates, in place of uvicorn's, which prints query strings.
            "log_config": logs.logging_config(level=args.log_level, access_log=args.access_log),
            "access_log": False,
            # a deadline on each request's head (slowloris), and a cap on what one process takes on
            "http": GuardedH11Protocol,
            "limit_concurrency": args.limit_concurrency,
            # A Starling WebSocket's client sends its token in the handshake and nothing after it but a
            # close; uvicorn's default let each message grow to 16 MiB, 32 of them queued per connection.
            "ws_max_size": WS_MAX_SIZE,
        },
    )


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    if config.processes > 1:
        # Spawned children inherit the environment: one count per caller across all of them.
        os.environ.setdefault("STARLING_RATE_LIMIT_BACKEND", "database")
    # uvicorn's Config sets up its loggers, so the parent's lines look like the children's.
    uvicorn.Config(config.app, **config.uvicorn_options)
    return Supervisor(config).run()


if __name__ == "__main__":
    sys.exit(main())
