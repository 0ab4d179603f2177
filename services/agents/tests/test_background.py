"""Background runs: queued with a Location, run by the workers, recovered after a restart, cancelled."""

from __future__ import annotations

import httpx
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette
from starlette.types import ASGIApp

from starling_core.settings import ServiceSettings
from starling_testkit import BoundDatabase
from starling_testkit.tokens import TokenFactory

from .factories import add_builtins, add_run
from .helpers import SAMPLE_TEXT, build_app, client_for, started, wait_until_finished


async def test_a_background_run_is_queued_then_completed(
    started_app: ASGIApp, auth_client: httpx.AsyncClient
) -> None:
    response = await auth_client.post(
        "/api/v1/agents/run", json={"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
    )
    assert response.status_code == 202
    queued = response.json()
    assert queued["status"] == "queued"
    assert queued["output"] is None
    assert response.headers["Location"] == f"/api/v1/agents/runs/{queued['run_id']}"

    finished = await wait_until_finished(auth_client, started_app, queued["run_id"])
    assert finished["status"] == "completed"
    assert finished["output"]
    assert finished["token_usage"] > 0


async def test_a_run_left_running_by_a_previous_process_is_completed_at_start_up(
    app: Starlette, db_session: AsyncSession, token_factory: TokenFactory
) -> None:
    await add_builtins(db_session)
    interrupted = await add_run(db_session, status="running", input_text=SAMPLE_TEXT)
    left_queued = await add_run(db_session, status="queued", agent_id="classifier", input_text="good")

    async with started(app) as served, client_for(served, token_factory()) as client:
        for run in (interrupted, left_queued):
            finished = await wait_until_finished(client, served, run.run_id)
            assert finished["status"] == "completed"


async def test_a_queued_run_is_cancelled_and_stays_cancelled(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(app_settings, app_database, workers=0)  # nobody takes the run: it stays queued
    async with started(app) as served, client_for(served, token_factory()) as client:
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        run_id = (await client.post("/api/v1/agents/run", json=body)).json()["run_id"]

        cancelled = await client.post(f"/api/v1/agents/runs/{run_id}/cancel")
        assert cancelled.status_code == 200
        assert cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["finished_at"] is not None
        assert (await client.get(f"/api/v1/agents/runs/{run_id}")).json()["status"] == "cancelled"
        assert (await client.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 409


async def test_only_the_owner_or_an_admin_cancels(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(app_settings, app_database, workers=0)
    async with started(app) as served, client_for(served, token_factory()) as owner:
        body = {"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": True}
        run_id = (await owner.post("/api/v1/agents/run", json=body)).json()["run_id"]
        async with client_for(served, token_factory(sub="someone-else")) as stranger:
            assert (await stranger.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 404
        async with client_for(
            served, token_factory(sub="admin", scopes=["agent:run", "agent:admin"])
        ) as admin:
            assert (await admin.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 200
        async with client_for(served, token_factory(scopes=["agent:read"])) as reader:
            assert (await reader.post(f"/api/v1/agents/runs/{run_id}/cancel")).status_code == 403
