"""The Alembic history matches the models, and the app migrates an empty database at start-up."""

from __future__ import annotations

from pathlib import Path

import httpx
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect

from starling_agents.app import MIGRATIONS, create_app, migrate
from starling_agents.models import AgentsBase
from starling_agents.settings import AgentsSettings
from starling_core.db import Database
from starling_core.migrations import differences
from starling_core.tokens import JWTConfig, issue_token


async def test_head_matches_the_models(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/agents.db")
    try:
        await migrate(database)
        await migrate(database)  # idempotent

        assert await differences(database, AgentsBase.metadata) == []
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
        assert tables == {"alembic_version", *AgentsBase.metadata.tables}
    finally:
        await database.dispose()


async def test_a_fresh_database_serves_the_built_in_agents(tmp_path: Path) -> None:
    assert (MIGRATIONS / "env.py").is_file()
    settings = AgentsSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    token = issue_token(JWTConfig.from_settings(settings), sub="dev", scopes=["agent:read"])
    for _ in range(2):  # a second start finds the built-ins there and adds none
        app = create_app(settings)
        async with (
            LifespanManager(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
        ):
            assert (await client.get("/health")).status_code == 200
            agents = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {token}"})
            assert [agent["agent_id"] for agent in agents.json()] == ["classifier", "summarizer"]
