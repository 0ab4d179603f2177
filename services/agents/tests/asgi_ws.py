"""A WebSocket client that speaks ASGI to the app in-process.

No WebSocket library (websockets, wsproto) is installed, so uvicorn cannot serve WebSockets and a
real-socket client is not available; this drives the same ASGI messages a server would send.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message

# A bound on every wait, so that a broken endpoint fails the test instead of hanging the suite.
WAIT = 10.0


class WebSocketSession:
    def __init__(self) -> None:
        self.to_app: asyncio.Queue[Message] = asyncio.Queue()
        self.from_app: asyncio.Queue[Message] = asyncio.Queue()
        self.close_code: int | None = None

    async def receive_message(self) -> Message:
        return await asyncio.wait_for(self.from_app.get(), timeout=WAIT)

    async def accepted(self) -> bool:
        """True when the app accepted; False when it closed first (the close code is kept)."""
        message = await self.receive_message()
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            return False
        assert message["type"] == "websocket.accept", message
        return True

    async def receive_json(self) -> dict[str, Any] | None:
        """The next JSON message, or None once the app closed (the close code is kept)."""
        message = await self.receive_message()
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            return None
        assert message["type"] == "websocket.send", message
        data: dict[str, Any] = json.loads(message["text"])
        return data

    async def receive_until_closed(self) -> list[dict[str, Any]]:
        events = []
        while (event := await self.receive_json()) is not None:
            events.append(event)
        return events


@asynccontextmanager
async def websocket_connect(app: ASGIApp, url: str) -> AsyncIterator[WebSocketSession]:
    parts = urlsplit(url)
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": parts.path,
        "raw_path": parts.path.encode(),
        "query_string": parts.query.encode(),
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "subprotocols": [],
        "state": {},
    }
    session = WebSocketSession()
    await session.to_app.put({"type": "websocket.connect"})

    async def serve() -> None:
        await app(scope, session.to_app.get, session.from_app.put)

    task = asyncio.create_task(serve())
    try:
        yield session
    finally:
        await session.to_app.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(task, timeout=WAIT)
