"""uvicorn's HTTP/1.1 protocol with a deadline for each request's head: a client that opens a connection
and sends nothing, or sends its headers a byte at a time, is answered 408 and cut off.

uvicorn closes an idle keep-alive connection after `--timeout-keep-alive`, but a new connection, and a
request head still arriving, have no deadline at all: 500 connections that sent nothing stayed open for
good (slowloris). This subclass of uvicorn's own `H11Protocol`, selected with uvicorn's documented
`--http` option, starts a timer when a connection opens and after each response, and stops it when h11
has read a whole head (a new request, or a WebSocket upgrade). A blank line alone is no head: after an
answer given without reading the body, the client's next bytes are that body's rest, and a
`\r\n\r\n` among them once stopped the timer and left the connection open for good. Bodies get their
deadline in `BodySizeLimitMiddleware`, where the request is an ASGI one.

    uvicorn starling_users.main:app --http starling_core.protocol:GuardedH11Protocol --limit-concurrency 1000
"""

from __future__ import annotations

import asyncio
import json
import os

from uvicorn.protocols.http.h11_impl import H11Protocol

# Seconds a client has to send a request's head (the request line and every header), from the moment
# the connection opens or the previous response ends. STARLING_HEADER_TIMEOUT overrides it.
HEADER_TIMEOUT = float(os.environ.get("STARLING_HEADER_TIMEOUT", "10"))


def _closing_json(status_line: bytes, detail: str) -> bytes:
    """A whole response that closes the connection, with the JSON `detail` every Starling error has."""
    body = json.dumps({"detail": detail}).encode()
    return (
        b"HTTP/1.1 " + status_line + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


_TIMEOUT_RESPONSE = _closing_json(b"408 Request Timeout", "Request header timeout")


class GuardedH11Protocol(H11Protocol):
    """`H11Protocol` that answers 408 and closes when a request's head takes over `HEADER_TIMEOUT`."""

    header_timeout = HEADER_TIMEOUT

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._guarded = transport
        self._head_deadline: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._await_head()

    def data_received(self, data: bytes) -> None:
        cycle = self.cycle
        super().data_received(data)
        # h11 read a whole head: it started a request's cycle, or the connection went to a WebSocket.
        if self._head_deadline is not None and (
            self.cycle is not cycle or self._guarded.get_protocol() is not self
        ):
            self._head_deadline.cancel()
            self._head_deadline = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self._guarded.is_closing():
            self._await_head()

    def send_400_response(self, msg: str) -> None:
        # What h11 cannot parse, uvicorn answered in plain text; every Starling error is JSON.
        if not self._guarded.is_closing():
            self._guarded.write(_closing_json(b"400 Bad Request", msg))
            self._guarded.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
        loop = asyncio.get_running_loop()
        self._head_deadline = loop.call_later(self.header_timeout, self._head_timed_out)

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        # A pipelined request whose head was already read is being answered: not a slow head.
        if self.cycle is not None and not self.cycle.response_complete:
            return
        if not self._guarded.is_closing():
            self._guarded.write(_TIMEOUT_RESPONSE)
            self._guarded.close()
