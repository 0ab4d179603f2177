"""The service over a real socket, as uvicorn serves it: the kit's `live_server`.

The in-process transport cannot carry a WebSocket handshake, so these tests are what proves that a
real client sees the events and the close codes the contract promises, that the token it sends in
the `bearer` subprotocol works, and that the one it sends in the URL never reaches uvicorn's logs.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from uvicorn.logging import AccessFormatter
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from starling_testkit import TokenFactory

from .helpers import SAMPLE_TEXT, background_run, bearer, following_a_background_run, live_events_url


async def test_events_of_a_background_run_arrive_over_a_real_socket(
    live_server: str, token_factory: TokenFactory
) -> None:
    token = token_factory(scopes=["agent:run", "agent:read"])
    run_id = await background_run(live_server, token)

    # The socket stays open until the run ends, whether it finished before we connected or after.
    async with connect(live_events_url(live_server, run_id, token)) as websocket:
        events: list[dict[str, Any]] = [json.loads(message) async for message in websocket]

    assert events[0]["type"] == "status"
    assert events[-1] == {"type": "done", "status": "completed"}
    [output] = [event for event in events if event["type"] == "output"]
    assert 0 < len(output["output"]) < len(SAMPLE_TEXT)


async def test_a_bad_token_is_closed_with_1008_over_a_real_socket(live_server: str) -> None:
    async with connect(live_events_url(live_server, "any-run", "not-a-jwt")) as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


@pytest.mark.parametrize("run_id", ["no-such-run", "é" * 200], ids=["short", "longer-than-a-close-frame"])
async def test_an_unknown_run_is_closed_with_4404_over_a_real_socket(
    live_server: str, token_factory: TokenFactory, run_id: str
) -> None:
    async with connect(live_events_url(live_server, run_id, token_factory())) as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
    assert closed.value.rcvd.reason.startswith("Run ")


async def test_a_token_in_the_bearer_subprotocol_works_over_a_real_socket(
    live_server: str, token_factory: TokenFactory
) -> None:
    token = token_factory(scopes=["agent:run", "agent:read"])
    async with following_a_background_run(live_server, token) as (_, websocket):
        events = [json.loads(message) async for message in websocket]
    assert events[-1] == {"type": "done", "status": "completed"}


async def test_a_bad_token_in_the_subprotocol_is_closed_with_1008_over_a_real_socket(
    live_server: str,
) -> None:
    url = live_events_url(live_server, "any-run")
    async with connect(url, subprotocols=bearer("not-a-jwt")) as websocket:
        assert websocket.subprotocol == "bearer"
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


ACCESS_FORMAT = '%(client_addr)s - "%(request_line)s" %(status_code)s'  # uvicorn's own


@contextmanager
def uvicorn_log_lines() -> Iterator[list[str]]:
    """Every line uvicorn logs at INFO meanwhile: its access log, and its WebSocket handshakes."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    access, server = Keep(), Keep()
    access.setFormatter(AccessFormatter(ACCESS_FORMAT, use_colors=False))
    loggers = {logging.getLogger("uvicorn.access"): access, logging.getLogger("uvicorn.error"): server}
    levels = {logger: logger.level for logger in loggers}
    for logger, handler in loggers.items():
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # the kit serves at "warning"
    try:
        yield lines
    finally:
        for logger, handler in loggers.items():
            logger.removeHandler(handler)
            logger.setLevel(levels[logger])


async def test_a_token_in_the_url_never_reaches_uvicorns_log(
    live_server: str, token_factory: TokenFactory
) -> None:
    token = token_factory(scopes=["agent:run", "agent:read"])
    run_id = await background_run(live_server, token)
    with uvicorn_log_lines() as lines:
        async with connect(live_events_url(live_server, run_id, token)) as websocket:
            events = [json.loads(message) async for message in websocket]
        async with httpx.AsyncClient(base_url=live_server) as client:
            assert (await client.get("/health", params={"token": token})).status_code == 200

    assert events[-1] == {"type": "done", "status": "completed"}
    logged = "\n".join(lines)
    assert token not in logged
    assert f'"WebSocket /api/v1/agents/runs/{run_id}/events?token=[redacted]" [accepted]' in logged
    assert '"GET /health?token=[redacted] HTTP/1.1" 200 OK' in logged
