"""The services' databases: one SQLite file each, or one database each on a throwaway PostgreSQL cluster.

Tools read them directly after a run (what was acknowledged must be there, exactly once), so the
harness hands out the URLs as well as creating the databases.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from starling_servers import postgres

KINDS = ("sqlite", "postgres")


@dataclass(frozen=True)
class Databases:
    """Each service's database URL, and the PostgreSQL cluster behind them if there is one."""

    urls: Mapping[str, str]
    cluster: postgres.Cluster | None = None


@contextlib.contextmanager
def databases(kind: str, names: Sequence[str], directory: Path, *, prefix: str) -> Iterator[Databases]:
    """SQLite files under `directory`, or a database per service named `<prefix>_<name>` on a cluster."""
    if kind == "sqlite":
        yield Databases({name: f"sqlite+aiosqlite:///{directory / name}.db" for name in names})
        return
    cluster_dir = directory / "postgres"
    cluster = postgres.ensure_cluster(cluster_dir)
    try:
        base = cluster.url.rsplit("/", 1)[0]
        # In a thread of its own: a tool may set up its services from inside its event loop.
        with ThreadPoolExecutor(1) as thread:
            thread.submit(asyncio.run, _create(cluster.url, [f"{prefix}_{name}" for name in names])).result()
        yield Databases({name: f"{base}/{prefix}_{name}" for name in names}, cluster)
    finally:
        postgres.stop_cluster(cluster_dir)


async def _create(server_url: str, names: Sequence[str]) -> None:
    engine = create_async_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for name in names:
                await connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        await engine.dispose()


async def query(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of one read, straight from a service's database (not through the service)."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            result = await connection.execute(text(sql), dict(params or {}))
            return [tuple(row) for row in result.all()]
    finally:
        await engine.dispose()
