"""The service over a real socket, as uvicorn serves it: the kit's `live_server`.

The in-process transport cannot carry a WebSocket handshake, so these tests are what proves that a
real client sees the events and the close codes the contract promises.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from starling_testkit import TokenFactory

from .helpers import SAMPLE_TEXT


def events_url(base_url: str, run_id: str, token: str) -> str:
    return f"{base_url.replace('http://', 'ws://')}/api/v1/agents/runs/{run_id}/events?token={token}"


async def test_events_of_a_background_run_arrive_over_a_real_socket(
    live_server: str, token_factory: TokenFactory
) -> None:
    token = token_factory(scopes=["agent:run", "agent:read"])
    async with httpx.AsyncClient(
        base_url=live_server, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        assert (await client.get("/health")).json()["status"] == "healthy"
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        response = await client.post("/api/v1/agents/run", json=body)
    assert response.status_code == 202
    run_id = response.json()["run_id"]

    # The socket stays open until the run ends, whether it finished before we connected or after.
    async with connect(events_url(live_server, run_id, token)) as websocket:
        events: list[dict[str, Any]] = [json.loads(message) async for message in websocket]

    assert events[0]["type"] == "status"
    assert events[-1] == {"type": "done", "status": "completed"}
    [output] = [event for event in events if event["type"] == "output"]
    assert 0 < len(output["output"]) < len(SAMPLE_TEXT)


async def test_a_bad_token_is_closed_with_1008_over_a_real_socket(live_server: str) -> None:
    async with connect(events_url(live_server, "any-run", "not-a-jwt")) as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_an_unknown_run_is_closed_with_4404_over_a_real_socket(
    live_server: str, token_factory: TokenFactory
) -> None:
    async with connect(events_url(live_server, "no-such-run", token_factory())) as websocket:
        with pytest.raises(ConnectionClosed) as closed:
            await websocket.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4404
