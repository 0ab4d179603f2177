"""A follower over a real socket whose client goes away: gone at once, with nothing about its run changed.

The live app here has no workers and re-reads a followed run once an hour, so the run stays queued
and nothing but the client's disconnect can end its follower.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from starling_core.settings import ServiceSettings
from starling_testkit import TokenFactory

from .helpers import agents_settings, follower_tasks, following_a_background_run


@pytest.fixture
def app_settings(app_settings: ServiceSettings) -> ServiceSettings:
    return agents_settings(app_settings, workers=0, events_poll=3600)


async def test_a_follower_whose_client_disconnects_is_gone_over_a_real_socket(
    live_server: str, token_factory: TokenFactory
) -> None:
    token = token_factory(scopes=["agent:run", "agent:read"])
    async with following_a_background_run(live_server, token) as (run_id, websocket):
        assert json.loads(await websocket.recv()) == {"type": "status", "status": "queued"}
        assert len(follower_tasks(run_id)) == 1

    for _ in range(1000):  # polled, bounded at about 10 s: the follower has an hour's wait otherwise
        if not follower_tasks(run_id):
            break
        await asyncio.sleep(0.01)
    assert follower_tasks(run_id) == []
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=live_server, headers=headers) as client:
        assert (await client.get(f"/api/v1/agents/runs/{run_id}")).json()["status"] == "queued"
