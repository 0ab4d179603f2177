"""Many runs at once on the service's own SQLite file, as the soak sends them: every one is answered 2xx.

The kit's usual app writes through one shared connection, which cannot show what concurrent
transactions do to each other; these tests give the app a pool on a real file instead.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from asgi_lifespan import LifespanManager
from sqlalchemy import func, select

from starling_agents.app import create_app
from starling_agents.models import Run
from starling_agents.settings import AgentsSettings
from starling_core.db import Database
from starling_core.tokens import JWTConfig, issue_token
from starling_testkit.tokens import TEST_JWT_SECRET

from .helpers import SAMPLE_TEXT, client_for, no_sleep

CONCURRENT = 40


def file_settings(tmp_path: Path) -> AgentsSettings:
    return AgentsSettings(
        env="test",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'agents.db'}",
        jwt_secret=TEST_JWT_SECRET,
        rate_limit="1000000/minute",
        workers=0,  # nothing but the requests themselves touches the database
    )


def token_for(settings: AgentsSettings) -> str:
    # Minted here, not by the kit's `token_factory`: that one brings the kit's app, whose guard refuses
    # the commits these tests make on purpose, on a file of their own.
    return issue_token(
        JWTConfig.from_settings(settings), sub="test-user-001", scopes=["agent:run", "agent:read"]
    )


async def test_concurrent_runs_on_a_sqlite_file_are_all_stored(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    app = create_app(settings, sleep=no_sleep)
    async with LifespanManager(app) as manager, client_for(manager.app, token_for(settings)) as client:
        answers = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/agents/run",
                    json={"agent_id": "summarizer", "input_text": SAMPLE_TEXT, "background": index % 2 == 0},
                )
                for index in range(CONCURRENT)
            )
        )
    statuses = Counter(answer.status_code for answer in answers)
    assert statuses == {200: CONCURRENT // 2, 202: CONCURRENT // 2}, [a.text for a in answers][:3]

    database = Database.from_url(settings.database_url)
    try:
        async with database.session() as session:
            assert await session.scalar(select(func.count()).select_from(Run)) == CONCURRENT
    finally:
        await database.dispose()


async def test_concurrent_cancels_on_a_sqlite_file_are_all_answered(tmp_path: Path) -> None:
    settings = file_settings(tmp_path)
    app = create_app(settings, sleep=no_sleep)
    async with LifespanManager(app) as manager, client_for(manager.app, token_for(settings)) as client:
        body = {"agent_id": "classifier", "input_text": "good", "background": True}
        queued = [(await client.post("/api/v1/agents/run", json=body)).json()["run_id"] for _ in range(20)]
        answers = await asyncio.gather(
            *(client.post(f"/api/v1/agents/runs/{run_id}/cancel") for run_id in queued)
        )
        again = await client.post(f"/api/v1/agents/runs/{queued[0]}/cancel")
    assert Counter(answer.status_code for answer in answers) == {200: 20}
    assert {answer.json()["status"] for answer in answers} == {"cancelled"}
    assert again.status_code == 409
