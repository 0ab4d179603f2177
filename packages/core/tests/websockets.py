"""A WebSocket conversation spoken in ASGI directly.

Starlette's TestClient warns that it wants httpx2, which Starling does not install: the client
connects, sends nothing, and disconnects if the app waits for more; the messages the app sent are
returned.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Scope


async def websocket_session(
    app: ASGIApp, path: str, query: str = "", protocols: Sequence[str] = ()
) -> list[Message]:
    scope: Scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 50000),
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")]
        + ([(b"sec-websocket-protocol", ", ".join(protocols).encode())] if protocols else []),
        "subprotocols": list(protocols),
    }
    incoming: list[Message] = [{"type": "websocket.connect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0) if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent
