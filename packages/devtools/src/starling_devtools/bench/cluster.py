"""Databases on the bench's one throwaway PostgreSQL cluster (started by `__main__` the way the test kit
starts its own): every PostgreSQL figure (the kit, the textbook recipe, the served services) runs on
this one server, so they differ only by what is measured, never by the server.
"""

from __future__ import annotations

import asyncio

import asyncpg
from sqlalchemy.engine import make_url


def create_database(server_url: str, name: str) -> str:
    """A fresh, empty database `name` on the server; returns its URL."""
    return asyncio.run(recreate_database(server_url, name))


async def recreate_database(server_url: str, name: str) -> str:
    """`create_database` on a running loop: the textbook project's session fixture awaits it."""
    maintenance = make_url(server_url).set(drivername="postgresql", database="postgres")
    connection = await asyncpg.connect(maintenance.render_as_string(hide_password=False))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)
