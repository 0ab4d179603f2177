"""A WebSocket client that speaks ASGI to the app in-process.

httpx's in-process transport cannot carry a WebSocket, so this drives the same ASGI messages a server
would send; `test_live.py` does the same over a real socket against uvicorn.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message

# A bound on every wait, so that a broken endpoint fails the test instead of hanging the suite.
WAIT = 10.0


class WebSocketSession:
    def __init__(self, scope: dict[str, Any]) -> None:
        self.scope = scope
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.subprotocol: str | None = None  # the one the app accepted with
        self.task: asyncio.Task[None] | None = None  # the app serving this connection

    @property
    def state(self) -> dict[str, Any]:
        """The app's lifespan state, as the connection sees it (`websocket.state`)."""
        state: dict[str, Any] = self.scope["state"]
        return state

    async def receive_message(self) -> Message:
        return await asyncio.wait_for(self.from_app.get(), timeout=WAIT)

    async def accepted(self) -> bool:
        """True when the app accepted; False when it closed first (the close code is kept)."""
        message = await self.receive_message()
        if message["type"] == "websocket.close":
            self._closed(message)
            return False
        assert message["type"] == "websocket.accept", message
        self.subprotocol = message.get("subprotocol")
        return True

    async def receive_json(self) -> dict[str, Any] | None:
        """The next JSON message, or None once the app closed (the close code is kept)."""
        message = await self.receive_message()
        if message["type"] == "websocket.close":
            self._closed(message)
            return None
        assert message["type"] == "websocket.send", message
        data: dict[str, Any] = json.loads(message["text"])
        return data

    async def receive_until_closed(self) -> list[dict[str, Any]]:
        events = []
        while (event := await self.receive_json()) is not None:
            events.append(event)
        return events

    async def disconnect(self) -> None:
        """The client goes away; returns once the app has finished serving the connection."""
        await self.to_app.put({"type": "websocket.disconnect", "code": 1001})
        assert self.task is not None
        await asyncio.wait_for(asyncio.shield(self.task), timeout=WAIT)

    def _closed(self, message: Message) -> None:
        self.close_code = message.get("code", 1000)
        self.close_reason = message.get("reason")


@asynccontextmanager
async def websocket_connect(
    app: ASGIApp, url: str, subprotocols: Sequence[str] = ()
) -> AsyncIterator[WebSocketSession]:
    """A connection to `url`, offering `subprotocols` (`["bearer", token]` carries a token)."""
    parts = urlsplit(url)
    offered = [(b"sec-websocket-protocol", ", ".join(subprotocols).encode())] if subprotocols else []
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver"), *offered],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": list(subprotocols),
        "state": {},
    }
    session = WebSocketSession(scope)
    await session.to_app.put({"type": "websocket.connect"})

    async def serve() -> None:
        await app(scope, session.to_app.get, session.from_app.put)

    session.task = asyncio.create_task(serve())
    try:
        yield session
    finally:
        if not session.task.done():
            await session.to_app.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(session.task, timeout=WAIT)
