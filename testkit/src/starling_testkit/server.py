"""`live_server`: the app under test served by uvicorn on a free loopback port.

In-process transports buffer whole responses and cannot carry WebSockets, so streaming tests need a
real server. It cannot share the test's transaction (other connections would not see it), so it
writes to the worker's database for real and the tables are emptied when the test ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from starling_core.db import is_sqlite

START_TIMEOUT = 15.0


@asynccontextmanager
async def serve(app: Starlette) -> AsyncIterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(), name="starling-live-server")
    try:
        async with asyncio.timeout(START_TIMEOUT):
            # uvicorn offers no awaitable "started"; poll its flag, and stop early if it died.
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("starling: live_server stopped before it started")
                await asyncio.sleep(0.005)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def truncate(engine: AsyncEngine, metadata: MetaData) -> None:
    """Empty every table of `metadata`, children before parents."""
    tables = list(reversed(metadata.sorted_tables))
    if not tables:
        return
    async with engine.begin() as connection:
        if is_sqlite(engine.url):
            for table in tables:
                await connection.execute(table.delete())
        else:
            names = ", ".join(connection.dialect.identifier_preparer.format_table(t) for t in tables)
            await connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
