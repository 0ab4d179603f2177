"""The main model made by the kit's `bind_factory` (polyfactory), saved in the test's transaction."""

from __future__ import annotations

from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.ext.asyncio import AsyncSession

from starling_agents.models import Agent
from starling_testkit import BindFactory


class AgentFactory(SQLAlchemyFactory[Agent]): ...


async def test_an_agent_is_made_with_a_json_config_and_an_aware_time(
    bind_factory: BindFactory, db_session: AsyncSession
) -> None:
    made = await bind_factory(AgentFactory).create_async()
    db_session.expunge_all()

    stored = await db_session.get(Agent, made.agent_id)

    assert stored is not None
    assert isinstance(stored.config, dict)
    assert stored.created_at.tzinfo is not None
