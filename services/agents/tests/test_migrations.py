"""The Alembic history matches the models and core's tables, and the app migrates an empty database."""

from __future__ import annotations

from pathlib import Path

import httpx
from alembic.script import ScriptDirectory
from asgi_lifespan import LifespanManager
from sqlalchemy import inspect, text

from starling_agents.app import MIGRATIONS, create_app
from starling_agents.models import AgentsBase
from starling_agents.settings import AgentsSettings
from starling_core import schema
from starling_core.db import Database
from starling_core.migrations import CORE_VERSIONS, differences, upgrade
from starling_core.tokens import JWTConfig, issue_token


def head_of(versions: Path) -> str | None:
    return ScriptDirectory(str(versions), version_locations=[str(versions)]).get_current_head()


async def test_an_empty_database_migrated_matches_the_models_and_cores_tables(tmp_path: Path) -> None:
    database = Database.from_url(f"sqlite+aiosqlite:///{tmp_path}/agents.db")
    try:
        await upgrade(database, MIGRATIONS)
        await upgrade(database, MIGRATIONS)  # idempotent

        assert await differences(database, AgentsBase.metadata) == []
        async with database.engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            heads = set((await connection.scalars(text("SELECT version_num FROM alembic_version"))).all())
        assert tables == {"alembic_version", *AgentsBase.metadata.tables, *schema.metadata.tables}
        # this service's history and core's, side by side, each at its head
        assert heads == {head_of(MIGRATIONS / "versions"), head_of(CORE_VERSIONS)}
    finally:
        await database.dispose()


async def test_a_fresh_database_serves_the_built_in_agents(tmp_path: Path) -> None:
    assert (MIGRATIONS / "versions").is_dir()
    settings = AgentsSettings(database_url=f"sqlite+aiosqlite:///{tmp_path}/fresh.db")
    token = issue_token(JWTConfig.from_settings(settings), sub="dev", scopes=["agent:read"])
    for _ in range(2):  # a second start finds the built-ins there and adds none
        # The lifespan's state reaches requests through the started app, `manager.app`.
        async with (
            LifespanManager(create_app(settings)) as manager,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=manager.app), base_url="http://t") as client,
        ):
            assert (await client.get("/health")).status_code == 200
            agents = await client.get("/api/v1/agents", headers={"Authorization": f"Bearer {token}"})
            assert [agent["agent_id"] for agent in agents.json()] == ["classifier", "summarizer"]
