"""`X-Request-ID` on every response: echoed when the caller sent a sane one, generated otherwise."""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
request_id_var: ContextVar[str | None] = ContextVar("starling_request_id", default=None)

# A caller's id is echoed into our headers and logs, so only a short run of safe characters is
# trusted; anything else (CR/LF injection, megabyte ids) is replaced by a fresh one.
_SAFE_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")


class RequestIDMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        # An id to correlate lines by, not a secret: 128 bits of Python's generator. uuid4() reads
        # os.urandom, a system call that lets go of the GIL, and under load taking it back behind
        # aiosqlite's threads made it 3-4% of a request's time on the event loop.
        request_id = _incoming_id(scope) or f"{random.getrandbits(128):032x}"
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SAFE_ID.fullmatch(candidate) else None
    return None
