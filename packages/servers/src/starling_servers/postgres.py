"""A throwaway PostgreSQL cluster for a test run or a tool run, started from the machine's own binaries.

One cluster serves every process that names the same run directory (the kit's xdist workers, a tool's
service processes): the first to ask starts it under a file lock (the pattern the xdist docs recommend
for session-wide resources) and records where it listens; the others read that record. Whoever made
the run directory stops it when the run ends.

No pytest here: the kit's `--db postgres` and the workspace tools both start clusters with it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

STATE_FILE = "cluster.json"
# Durability buys nothing for a cluster that is deleted at the end of the run.
SERVER_OPTIONS = (
    "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=200 -c shared_buffers=64MB"
)


class PostgresUnavailable(RuntimeError):
    """No cluster could be started; the message says why (and the server's log when it failed to start)."""


@dataclass(frozen=True)
class Cluster:
    url: str  # server URL with the admin user and the `postgres` maintenance database
    data_dir: Path


def find_binaries() -> Path:
    """The directory holding `initdb` and `pg_ctl`: PATH first, then Debian's versioned folders."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(os.path.realpath(on_path)).parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name.split(".")[0])
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "pg_ctl").exists() and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise PostgresUnavailable(
        "starling: a throwaway PostgreSQL needs its initdb and pg_ctl (Debian: apt-get install postgresql)"
    )


def ensure_cluster(run_dir: Path) -> Cluster:
    """Start the run's cluster once, whichever worker asks first; return where it listens."""
    run_dir.mkdir(parents=True, exist_ok=True)
    state = run_dir / STATE_FILE
    with FileLock(str(run_dir / "cluster.lock")):
        if state.exists():
            recorded = json.loads(state.read_text())
            return Cluster(recorded["url"], Path(recorded["data_dir"]))
        cluster = _start(run_dir)
        state.write_text(json.dumps({"url": cluster.url, "data_dir": str(cluster.data_dir)}))
        return cluster


def stop_cluster(run_dir: Path, *, keep_data: bool = False) -> bool:
    """Stop the run's cluster if one was started; True when there was one."""
    state = run_dir / STATE_FILE
    with FileLock(str(run_dir / "cluster.lock")):
        if not state.exists():
            return False
        data_dir = Path(json.loads(state.read_text())["data_dir"])
        _run_as_owner([str(find_binaries() / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"])
        state.unlink()
        if not keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        return True


def _start(run_dir: Path) -> Cluster:
    binaries = find_binaries()
    data_dir = run_dir / "pgdata"
    log_file = run_dir / "postgres.log"
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir()
    owner = _server_user()
    if owner is not None:
        # PostgreSQL refuses to run as root: hand the cluster's files to an unprivileged user, who
        # must also be able to reach them through the run directory (made private by mkdtemp).
        run_dir.chmod(run_dir.stat().st_mode | 0o711)
        os.chown(data_dir, owner.pw_uid, owner.pw_gid)
        log_file.touch()
        os.chown(log_file, owner.pw_uid, owner.pw_gid)
    _run_as_owner(
        [str(binaries / "initdb"), "-D", str(data_dir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
         "--no-sync", "--no-instructions"]
    )  # fmt: skip
    port = _free_port()
    try:
        _run_as_owner(
            [str(binaries / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file), "-w", "-t", "60",
             "-o", f"-p {port} -h 127.0.0.1 -k '' {SERVER_OPTIONS}", "start"]
        )  # fmt: skip
    except PostgresUnavailable as exc:
        log = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise PostgresUnavailable(f"{exc}\n{log}") from None
    return Cluster(f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres", data_dir)


def _server_user() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresUnavailable("starling: running as root and no unprivileged user to run PostgreSQL as")


def _run_as_owner(command: list[str]) -> None:
    owner = _server_user()
    result = subprocess.run(  # noqa: S603 - the binaries come from find_binaries(), not from input
        command,
        capture_output=True,
        text=True,
        check=False,
        user=owner.pw_uid if owner else None,
        group=owner.pw_gid if owner else None,
        cwd="/",
        timeout=120,
    )
    if result.returncode != 0:
        raise PostgresUnavailable(
            f"starling: {Path(command[0]).name} failed ({result.returncode}): {result.stderr.strip()}"
        )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
