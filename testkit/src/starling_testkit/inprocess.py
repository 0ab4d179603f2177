"""Route one service's outbound httpx calls to another service's app, in this process.

Services talk over HTTP only, and every gateway takes an httpx transport; handing it this one
exercises the caller's real client (retries included) against the callee's real routes, with no mock
and no socket.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from asgi_lifespan import LifespanManager
from starlette.types import ASGIApp


@asynccontextmanager
async def in_process(app: ASGIApp) -> AsyncIterator[httpx.AsyncBaseTransport]:
    """A transport to `app`, whose lifespan runs for as long as the block."""
    async with LifespanManager(app) as manager:
        yield httpx.ASGITransport(app=manager.app)
