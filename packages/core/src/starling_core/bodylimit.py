"""Refuse request bodies over a size limit with a JSON 413, and bodies that arrive too slowly with a 408.

Starlette's own limit answers in plain text; every Starling error carries a JSON `detail`, so this
small middleware checks `Content-Length` up front and counts streamed (chunked) bodies as they arrive.
The whole body must arrive within `body_timeout` seconds of the endpoint's first read. A deadline per
part was not enough: a client sending a byte every few seconds never left a gap that long, and held a
connection and a worker's attention for as long as the body limit let it (days, for 1 MiB). Once the
body is complete, waiting on `receive` (for a disconnect) has no deadline. Both refusals close the
connection: the rest of the body would otherwise still be read, after the answer, for nothing.

A request that frames its body twice, `Content-Length` beside `Transfer-Encoding`, is a 400 that closes
the connection too (RFC 9112 section 6.1). h11 reads the chunks and ignores the length; a proxy in front
that read the length would take the rest for another request (request smuggling).
"""

from __future__ import annotations

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starling_core.errors import error_response

_CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            413, detail=f"Request body is larger than the limit of {limit} bytes", headers=_CLOSE
        )


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            408, detail=f"Request body timeout: not complete within {seconds:g} s", headers=_CLOSE
        )


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_size: int, body_timeout: float = 30.0) -> None:
        self.app = app
        self.max_body_size = max_body_size
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        if _framed_twice(scope):
            detail = "Content-Length and Transfer-Encoding together: send one of them"
            await error_response(400, detail, _CLOSE)(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_size:
            too_large = BodyTooLarge(self.max_body_size)
            await error_response(413, too_large.detail, too_large.headers)(scope, receive, send)
            return

        received = 0
        complete = False
        deadline: float | None = None

        async def receive_limited() -> Message:
            nonlocal received, complete, deadline
            if complete:
                return await receive()
            if deadline is None:
                deadline = asyncio.get_running_loop().time() + self.body_timeout
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                # Raised inside the endpoint's body read, so the exception handlers answer 408.
                raise BodyTimeout(self.body_timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body_size:
                    # Raised inside the endpoint's body read, so the exception handlers answer 413.
                    raise BodyTooLarge(self.max_body_size)
            return message

        await self.app(scope, receive_limited, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _framed_twice(scope: Scope) -> bool:
    names = {name for name, _ in scope["headers"]}
    return b"content-length" in names and b"transfer-encoding" in names
