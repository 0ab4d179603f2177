"""One run of the workspace's services as real processes: what every tool stands on.

`run()` finds the services (`discovery`), places them, makes their databases, starts the broker when
asked, starts each service with its environment and its own log, waits until every `/health` answers
200, and on the way out stops every service, then the broker, then the database cluster: also when
SIGTERM or SIGHUP ends the run, which Python would otherwise end without a `finally`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar

from starling_devtools.harness import discovery, processes
from starling_devtools.harness.databases import Databases, databases
from starling_devtools.harness.environment import Admin, Environment
from starling_servers import kafka

# The checkout this package is part of: its services are the ones run unless a tool is told otherwise.
ROOT = Path(__file__).resolve().parents[5]
T = TypeVar("T")


@dataclass
class Stack:
    """A run's services, up: where each answers, its process and log, its database, the shared parts."""

    environment: Environment
    databases: Databases
    services: dict[str, processes.Service]
    logs: dict[str, Path]
    python: str = sys.executable
    cwd: Path | None = None
    running: dict[str, processes.Running] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        return {name: service.url for name, service in self.services.items()}

    def start(self, names: Sequence[str], *, signals: processes.StopSignals | None = None) -> float:
        """Start these services and wait until each is healthy; returns the seconds that took."""
        for name in names:
            with signals.deferred() if signals is not None else contextlib.nullcontext():
                log = self.logs.get(name)
                self.running[name] = processes.start(
                    self.services[name], python=self.python, cwd=self.cwd, log=log
                )
        return processes.wait_healthy([self.running[name] for name in names])

    def kill(self, name: str) -> None:
        processes.kill(self.running.pop(name))

    def stop(self, names: Sequence[str] | None = None) -> None:
        chosen = list(self.running) if names is None else list(names)
        processes.stop([self.running.pop(name) for name in chosen if name in self.running])


def option(default: T, text: str) -> T:
    """A tool's option as a field of its options dataclass: `--the-name`, of its default's type."""
    made: T = field(default=default, metadata={"help": text})
    return made


def command_line(tool: str, description: str, options: type | None = None) -> argparse.ArgumentParser:
    """A tool's parser: a flag for each `option` field of its `options` dataclass, the workspace it
    runs (`--root`), and whether it keeps its databases and logs (`--keep`)."""
    parser = argparse.ArgumentParser(prog=f"python -m starling_devtools.{tool}", description=description)
    for item in fields(options) if options else ():
        if text := item.metadata.get("help"):
            flag, default = "--" + item.name.replace("_", "-"), item.default
            parser.add_argument(flag, type=type(default), default=default, help=f"{text} (default {default})")
    parser.add_argument("--root", type=Path, default=ROOT, help="the workspace whose services run")
    parser.add_argument("--keep", action="store_true", help="keep the databases and logs")
    return parser


@contextlib.contextmanager
def work_dir(prefix: str, *, keep: bool = False) -> Iterator[Path]:
    """A directory for databases and logs; kept when asked or when the block fails, for inspection."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    # Traversable (not listable) by others: PostgreSQL, run as its own user when we are root, keeps
    # its data directory in here.
    path.chmod(0o711)
    try:
        yield path
    except BaseException:
        print(f"files kept in {path}", file=sys.stderr)
        raise
    if keep:
        print(f"files kept in {path}")
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def run(
    directory: Path | None,
    *,
    root: Path = ROOT,
    names: Sequence[str] | None = None,
    db: str | None = "sqlite",
    base: int | None = 0,
    ports: Mapping[str, int] | None = None,
    broker: bool = False,
    bootstrap: str | None = None,
    admin: Admin | None = None,
    tool: bool = True,
    settings: Mapping[str, Mapping[str, str]] | None = None,
    scale: Mapping[str, int] | None = None,
    quiet: bool = False,
    python: str = sys.executable,
    signals: processes.StopSignals | None = None,
) -> Iterator[Stack]:
    """The workspace's services (or those in `names`) up and healthy for the block, stopped after it.

    `directory` holds a log per service and their SQLite files or PostgreSQL cluster (`db`); None sends
    the logs to the terminal and leaves each service its own database (`nox -s serve`). Ports: `base`
    (None: each service's own, 0: free ones, else base + offset), with `ports` naming exceptions.
    `settings` adds to one service's environment, `scale` gives one several processes. A tool's run
    (`tool`) signs with a secret of its own, lifts the rate limit and hashes cheaply.
    """
    found = discovery.discover(root)
    chosen = {name: found[name] for name in (names or found)}
    placed = discovery.assign_ports(chosen, base) | dict(ports or {})
    with contextlib.ExitStack() as stack:
        if signals is None and threading.current_thread() is threading.main_thread():
            signals = stack.enter_context(processes.StopSignals())
        if broker and bootstrap is None:
            bootstrap = stack.enter_context(kafka.start()).bootstrap
        dbs = Databases({})
        if directory is not None and db is not None:
            dbs = stack.enter_context(databases(db, list(chosen), directory, prefix="starling"))
        environment = Environment(
            {name: f"http://127.0.0.1:{port}" for name, port in placed.items()},
            secret=secrets.token_urlsafe(32) if tool else None,
            bootstrap=bootstrap,
            admin=admin or Admin(),
            tool=tool,
        )
        services = {}
        for name, spec in chosen.items():
            env = environment.env(name, dbs.urls.get(name))
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(spec.source), os.environ.get("PYTHONPATH")])
            )
            if not tool:  # the developer loop: what the operator's environment says wins
                env = {key: value for key, value in env.items() if key not in os.environ}
            env |= (settings or {}).get(name, {})
            services[name] = processes.Service(
                name, placed[name], env, processes=(scale or {}).get(name, 1), quiet=quiet
            )
        logs = {name: directory / f"{name}.log" for name in chosen} if directory is not None else {}
        running = Stack(environment, dbs, services, logs, python, root)
        try:
            running.start(list(chosen), signals=signals)
            yield running
        finally:
            if signals is not None:
                processes.stop_shielded(list(running.running.values()), signals)
            running.stop()  # what is left, and the record of what ran
