"""Where each test run's databases live: one per xdist worker, with names that repeat run to run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

DATABASE_URL_ENV = "STARLING_TEST_DATABASE_URL"


def worker_id(config: pytest.Config) -> str:
    workerinput = getattr(config, "workerinput", None)
    return str(workerinput["workerid"]) if workerinput else "main"


def sqlite_url(directory: Path, worker: str) -> str:
    path = directory / f"starling_test_{worker}.sqlite3"
    remove_sqlite(path)  # a file kept by --keep-db or a killed run must not leak rows into this one
    return f"sqlite+aiosqlite:///{path}"


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_path(url: str) -> Path:
    return Path(url.split(":///", 1)[1])


def configured_url() -> str | None:
    return os.environ.get(DATABASE_URL_ENV) or None
