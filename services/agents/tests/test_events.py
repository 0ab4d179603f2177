"""WS /api/v1/agents/runs/{run_id}/events: status, output and done, and the refusals' close codes."""

from __future__ import annotations

import httpx
import pytest
from starlette.types import ASGIApp

from starling_agents.app import agents_state
from starling_agents.events import RunEvents
from starling_core.ratelimit import MemoryRateLimitBackend
from starling_core.settings import ServiceSettings
from starling_testkit import BoundDatabase
from starling_testkit.tokens import TokenFactory

from .asgi_ws import websocket_connect
from .helpers import SAMPLE_TEXT, agents_settings, build_app, client_for, follower_tasks, started


def events_url(run_id: str, token: str | None) -> str:
    query = f"?token={token}" if token else ""
    return f"/api/v1/agents/runs/{run_id}/events{query}"


async def finished_run(client: httpx.AsyncClient) -> str:
    response = await client.post(
        "/api/v1/agents/run", json={"agent_id": "summarizer", "input_text": SAMPLE_TEXT}
    )
    run_id: str = response.json()["run_id"]
    return run_id


async def test_a_finished_run_sends_status_output_and_done_at_once(
    started_app: ASGIApp, auth_client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    run_id = await finished_run(auth_client)
    output = (await auth_client.get(f"/api/v1/agents/runs/{run_id}")).json()["output"]
    async with websocket_connect(started_app, events_url(run_id, token_factory())) as ws:
        assert await ws.accepted()
        assert await ws.receive_until_closed() == [
            {"type": "status", "status": "completed"},
            {"type": "output", "output": output},
            {"type": "done", "status": "completed"},
        ]
        assert ws.close_code == 1000


async def test_a_live_run_streams_its_events_until_it_ends(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(app_settings, app_database, workers=0)  # the run waits, queued, for the cancel below
    token = token_factory()
    async with started(app) as served, client_for(served, token) as client:
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        run_id = (await client.post("/api/v1/agents/run", json=body)).json()["run_id"]
        async with websocket_connect(served, events_url(run_id, token)) as ws:
            assert await ws.accepted()
            assert await ws.receive_json() == {"type": "status", "status": "queued"}
            assert (await client.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 200
            assert await ws.receive_until_closed() == [{"type": "done", "status": "cancelled"}]
            assert ws.close_code == 1000


async def test_a_missing_or_bad_token_closes_with_1008(
    started_app: ASGIApp, auth_client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    run_id = await finished_run(auth_client)
    for token in (
        None,
        "not-a-jwt",
        token_factory(secret="another-secret-0123456789abcdef0123"),
        token_factory(scopes=["agent:run"]),
    ):
        async with websocket_connect(started_app, events_url(run_id, token)) as ws:
            # Accepted, then closed: a real client sees the 1008 close, not a refused handshake.
            assert await ws.accepted()
            assert await ws.receive_json() is None
            assert ws.close_code == 1008


async def test_an_unknown_or_someone_elses_run_closes_with_4404(
    started_app: ASGIApp, auth_client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    run_id = await finished_run(auth_client)
    for target, token in (("no-such-run", token_factory()), (run_id, token_factory(sub="someone-else"))):
        async with websocket_connect(started_app, events_url(target, token)) as ws:
            assert await ws.accepted()
            assert await ws.receive_json() is None
            assert ws.close_code == 4404


async def test_an_admin_follows_anyones_run(
    started_app: ASGIApp, auth_client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    run_id = await finished_run(auth_client)
    admin = token_factory(sub="admin", scopes=["agent:read", "agent:admin"])
    async with websocket_connect(started_app, events_url(run_id, admin)) as ws:
        assert await ws.accepted()
        assert (await ws.receive_until_closed())[-1] == {"type": "done", "status": "completed"}


async def test_a_run_ended_in_another_process_is_seen_by_rereading_it(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    # Two apps stand for two `serve` processes: one database, each its own in-memory events. The
    # WebSocket follows the run in one while the other cancels it, so no event reaches it.
    here = build_app(app_settings, app_database, workers=0, events_poll=0.01)
    there = build_app(app_settings, app_database, workers=0)
    token = token_factory()
    async with (
        started(here) as served_here,
        started(there) as served_there,
        client_for(served_here, token) as client,
        client_for(served_there, token) as other_client,
    ):
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        run_id = (await client.post("/api/v1/agents/run", json=body)).json()["run_id"]
        async with websocket_connect(served_here, events_url(run_id, token)) as ws:
            assert await ws.accepted()
            assert await ws.receive_json() == {"type": "status", "status": "queued"}
            assert (await other_client.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 200
            assert await ws.receive_until_closed() == [{"type": "done", "status": "cancelled"}]
            assert ws.close_code == 1000


async def test_a_run_completed_in_another_process_sends_its_output_once(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    here = build_app(app_settings, app_database, workers=0, events_poll=0.01)
    token = token_factory()
    async with (
        started(here) as served_here,
        # The other process: its services, as its lifespan builds them, on the same database.
        agents_state(agents_settings(app_settings, workers=0), app_database) as there,
        client_for(served_here, token) as client,
    ):
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        run_id = (await client.post("/api/v1/agents/run", json=body)).json()["run_id"]
        async with websocket_connect(served_here, events_url(run_id, token)) as ws:
            assert await ws.accepted()
            assert await ws.receive_json() == {"type": "status", "status": "queued"}
            # The other process's worker takes the run: its events stay in that process.
            await there["runs"].process(run_id)
            events = await ws.receive_until_closed()
        output = (await client.get(f"/api/v1/agents/runs/{run_id}")).json()["output"]

    assert events[-2:] == [{"type": "output", "output": output}, {"type": "done", "status": "completed"}]
    assert events[:-2] in ([], [{"type": "status", "status": "running"}])


# --- the token in a subprotocol, and what bounds a follower ----------------------------------------


async def test_a_token_in_the_bearer_subprotocol_is_accepted_with_it(
    started_app: ASGIApp, auth_client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    run_id = await finished_run(auth_client)
    async with websocket_connect(started_app, events_url(run_id, None), ["bearer", token_factory()]) as ws:
        assert await ws.accepted()
        assert ws.subprotocol == "bearer"  # a browser drops a connection whose protocol is not selected
        assert (await ws.receive_until_closed())[-1] == {"type": "done", "status": "completed"}


async def test_a_bad_token_in_the_subprotocol_is_accepted_with_it_then_closed_with_1008(
    started_app: ASGIApp,
) -> None:
    async with websocket_connect(started_app, events_url("any-run", None), ["bearer", "not-a-jwt"]) as ws:
        assert await ws.accepted()
        assert ws.subprotocol == "bearer"
        assert await ws.receive_json() is None
        assert ws.close_code == 1008


async def queued_run(client: httpx.AsyncClient) -> str:
    body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
    response = await client.post("/api/v1/agents/run", json=body)
    assert response.json()["status"] == "queued"
    run_id: str = response.json()["run_id"]
    return run_id


async def test_a_follower_whose_client_disconnects_is_gone_at_once(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    # No worker and no re-read for an hour: nothing about the run changes while it is followed.
    app = build_app(app_settings, app_database, workers=0, events_poll=3600)
    token = token_factory()
    async with started(app) as served, client_for(served, token) as client:
        run_id = await queued_run(client)
        async with websocket_connect(served, events_url(run_id, token)) as ws:
            assert await ws.accepted()
            assert await ws.receive_json() == {"type": "status", "status": "queued"}
            run_events: RunEvents = ws.state["run_events"]
            assert (run_events.subscriber_count(run_id), len(follower_tasks(run_id))) == (1, 1)

            await ws.disconnect()  # returns once the app has finished with the connection

            assert (run_events.subscriber_count(run_id), follower_tasks(run_id)) == (0, [])
        assert (await client.get(f"/api/v1/agents/runs/{run_id}")).json()["status"] == "queued"


async def test_a_follower_that_sent_nothing_for_the_idle_timeout_is_closed_with_4408(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(app_settings, app_database, workers=0, events_poll=0.01, events_idle_timeout=0.2)
    token = token_factory()
    async with started(app) as served, client_for(served, token) as client:
        run_id = await queued_run(client)
        async with websocket_connect(served, events_url(run_id, token)) as ws:
            assert await ws.accepted()
            # Re-read every 10 ms, unchanged each time: re-reads are not activity.
            assert await ws.receive_until_closed() == [{"type": "status", "status": "queued"}]
            assert (ws.close_code, ws.close_reason) == (4408, "Idle timeout: nothing to send for 0.2 seconds")
            await ws.disconnect()  # the client answers the close
            assert ws.state["run_events"].subscriber_count(run_id) == 0


@pytest.mark.parametrize("given", [True, False], ids=["a-limiter-handed-in", "the-apps-own"])
async def test_opening_a_follower_spends_the_callers_rate_limit_with_its_requests(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory, given: bool
) -> None:
    # A clock that stands still, or one hit every 20 s at 3 a minute: three hits are three hits here.
    limiter = MemoryRateLimitBackend(clock=lambda: 1_800_000_000.0) if given else None
    app = build_app(app_settings, app_database, rate_limit="3/minute", rate_limit_backend=limiter)
    token = token_factory()
    async with started(app) as served, client_for(served, token) as client:
        run_id = await finished_run(client)  # one request
        closes = []
        for _ in range(3):  # two followers within the limit, the third over it
            async with websocket_connect(served, events_url(run_id, token)) as ws:
                assert await ws.accepted()
                await ws.receive_until_closed()
                closes.append((ws.close_code, ws.close_reason))
        async with client_for(served, token_factory(sub="someone-else")) as other:
            assert (await other.get("/api/v1/agents")).status_code == 200  # a count per caller
        assert (await client.get("/api/v1/agents")).status_code == 429  # and one count per caller
    assert closes == [(1000, ""), (1000, ""), (4429, "Rate limit exceeded")]
