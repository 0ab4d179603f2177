"""What cuts off abuse: a deadline on a request's head (over a real socket) and on its body, and the
headers every response carries."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect

from starling_core.app import create_app
from starling_core.db import Database
from starling_core.protocol import GuardedH11Protocol

from .itemsapp import ItemSettings


class QuickHeadProtocol(GuardedH11Protocol):
    header_timeout = 0.3


async def echo(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


async def boom(request: Request) -> Response:
    raise RuntimeError("secret internals")


async def echo_socket(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


@pytest.fixture
async def database() -> AsyncIterator[Database]:
    database = Database.from_url("sqlite+aiosqlite://")
    yield database
    await database.dispose()


def small_app(database: Database, **settings: object) -> Starlette:
    return create_app(
        ItemSettings(**settings),  # type: ignore[arg-type]
        database=database,
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/boom", boom),
            WebSocketRoute("/socket", echo_socket),
        ],
    )


@pytest.fixture
async def server(database: Database) -> AsyncIterator[tuple[str, int]]:
    async with serving(small_app(database)) as address:
        yield address


@contextlib.asynccontextmanager
async def serving(app: Starlette) -> AsyncIterator[tuple[str, int]]:
    """`app` served by uvicorn with core's guarded protocol (0.3 s for a head) on a loopback port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, http=QuickHeadProtocol, log_level="warning")
    served = uvicorn.Server(config)
    task = asyncio.create_task(served.serve())
    try:
        async with asyncio.timeout(10):
            while not served.started:  # noqa: ASYNC110 - uvicorn offers a flag, no event, for "started"
                await asyncio.sleep(0.01)
        yield "127.0.0.1", served.servers[0].sockets[0].getsockname()[1]
    finally:
        served.should_exit = True
        await task


async def read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):  # the server must close the connection itself, well before this
        return await reader.read()


async def test_a_connection_that_sends_nothing_is_answered_408_and_closed(server: tuple[str, int]) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        answer = await read_all(reader)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert answer.endswith(b'{"detail": "Request header timeout"}')


async def answer_to_trickle(
    address: tuple[str, int], start: bytes, rest: bytes, pause: float
) -> tuple[bytes, int]:
    """Send `start`, then `rest` a byte every `pause` seconds: all the server answered before it closed
    the connection, and how many bytes of `rest` had been sent by then."""
    reader, writer = await asyncio.open_connection(*address)
    writer.write(start)
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        for byte in rest:
            writer.write(bytes([byte]))
            await writer.drain()
            sent += 1
            await asyncio.sleep(pause)

    trickling = asyncio.create_task(trickle())
    try:
        return await read_all(reader), sent
    finally:
        trickling.cancel()
        writer.close()


async def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: tuple[str, int]) -> None:
    head = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    # ten bytes a second: the whole head would take 3.5 s
    answer, sent = await answer_to_trickle(server, b"", head, 0.1)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert sent < len(head)  # cut off before the head was complete


async def test_requests_within_the_deadline_are_served_on_one_kept_alive_connection(
    server: tuple[str, int],
) -> None:
    host, port = server
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        first = await client.get("/health")
        second = await client.post("/echo", content=b"x" * 10)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json() == {"size": 10}


async def test_a_body_sent_a_byte_at_a_time_is_cut_off(database: Database) -> None:
    # A byte every 50 ms never leaves a gap of 0.5 s: the body as a whole must arrive within the limit.
    body = b"x" * 200  # 10 s at this pace
    head = b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n" % len(body)
    async with serving(small_app(database, body_timeout=0.5)) as address:
        answer, sent = await answer_to_trickle(address, head, body, 0.05)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in answer.lower()
    assert sent < len(body)


async def test_the_unread_rest_of_a_body_cannot_hold_a_connection_open(server: tuple[str, int]) -> None:
    # The route answers without reading the body; what the client sends after the answer is that body's
    # rest, not a new head, even when it holds a blank line: the next head's deadline still runs.
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(b"GET /health HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        async with asyncio.timeout(5):
            answer = await reader.readuntil(b"\r\n\r\n")
            length = int(answer.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            answer += await reader.readexactly(length)
        writer.write(b"\r\n\r\n")
        await writer.drain()
        rest = await read_all(reader)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert rest.startswith(b"HTTP/1.1 408 ")


async def test_a_websocket_outlives_the_head_deadline(server: tuple[str, int]) -> None:
    host, port = server
    async with connect(f"ws://{host}:{port}/socket") as websocket:
        # Nothing to poll for: what is proven is that the head's timer, once due, did not fire.
        await asyncio.sleep(QuickHeadProtocol.header_timeout * 2)
        await websocket.send("still here")
        assert await websocket.recv() == "still here"


async def test_content_length_beside_transfer_encoding_is_400_and_the_connection_closed(
    server: tuple[str, int],
) -> None:
    # A front proxy that reads the length where this server reads the chunks would take the rest for
    # another request (smuggling); RFC 9112 section 6.1 has the connection closed after such a request.
    smuggled = b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n"
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(
            b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n0\r\n\r\n" + smuggled
        )
        answer = await read_all(reader)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.count(b"HTTP/1.1 ") == 1  # the request behind it was never served


@pytest.mark.parametrize(
    "head",
    [b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: +3\r\n\r\n", b"NOT HTTP AT ALL\r\n\r\n"],
    ids=["bad-content-length", "no-request-line"],
)
async def test_a_request_http_cannot_parse_is_a_json_400(server: tuple[str, int], head: bytes) -> None:
    reader, writer = await asyncio.open_connection(*server)
    try:
        writer.write(head)
        answer = await read_all(reader)
    finally:
        writer.close()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/json" in answer.lower()
    assert answer.endswith(b'{"detail": "Invalid HTTP request received."}')


async def test_a_body_that_stops_arriving_is_answered_408(database: Database) -> None:
    app = small_app(database, body_timeout=0.2)
    sent: list[Message] = []
    parts = [{"type": "http.request", "body": b"{", "more_body": True}]

    async def receive() -> Message:
        if parts:
            return parts.pop(0)
        await asyncio.Event().wait()  # the client never sends the rest
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/echo", "raw_path": b"/echo", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"t"), (b"transfer-encoding", b"chunked")],
        "client": ("127.0.0.1", 1), "server": ("t", 80), "state": {},
    }  # fmt: skip
    async with asyncio.timeout(5):
        await app(scope, receive, send)

    assert sent[0]["status"] == 408
    assert b"Request body timeout" in sent[1]["body"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/health"), ("GET", "/nowhere"), ("GET", "/boom")])
async def test_every_response_says_nosniff(database: Database, method: str, path: str) -> None:
    app = small_app(database)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.request(method, path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
