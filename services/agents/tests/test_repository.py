"""The repositories' SQL on the test's own session."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from starling_agents.repository import AgentRepository, RunRepository

from .factories import T0, add_builtins, add_run


async def test_agents_are_listed_by_id(db_session: AsyncSession) -> None:
    await add_builtins(db_session)
    assert [agent.agent_id for agent in await AgentRepository(db_session).all()] == [
        "classifier",
        "summarizer",
    ]


async def test_created_at_comes_back_in_utc(db_session: AsyncSession) -> None:
    run = await add_run(db_session)
    db_session.expunge_all()
    stored = await RunRepository(db_session).get(run.run_id)
    assert stored is not None
    assert stored.created_at == T0
    assert stored.created_at.utcoffset() is not None


async def test_page_filters_and_continues_after_the_key(db_session: AsyncSession) -> None:
    runs = RunRepository(db_session)
    first = await add_run(db_session, minutes=1)
    second = await add_run(db_session, minutes=2, agent_id="classifier")
    await add_run(db_session, minutes=3, owner="someone-else")
    await add_run(db_session, minutes=4, status="failed")

    mine = await runs.page(limit=10, owner="test-user-001")
    assert [run.created_at for run in mine] == [first.created_at, second.created_at, mine[2].created_at]
    assert [run.run_id for run in await runs.page(limit=10, agent_id="classifier")] == [second.run_id]
    assert [run.status for run in await runs.page(limit=10, status="failed")] == ["failed"]
    after_first = await runs.page(limit=1, after=(first.created_at, first.run_id))
    assert [run.run_id for run in after_first] == [second.run_id]
    assert len(await runs.page(limit=10, since=second.created_at)) == 3


async def test_unfinished_ids_are_the_queued_and_running_runs_oldest_first(db_session: AsyncSession) -> None:
    running = await add_run(db_session, minutes=2, status="running")
    queued = await add_run(db_session, minutes=1, status="queued")
    await add_run(db_session, status="completed")
    await add_run(db_session, status="cancelled")
    assert await RunRepository(db_session).unfinished_ids() == [queued.run_id, running.run_id]


async def test_transition_changes_only_a_run_in_one_of_the_given_statuses(db_session: AsyncSession) -> None:
    runs = RunRepository(db_session)
    run = await add_run(db_session, status="cancelled")
    assert not await runs.transition(run.run_id, from_statuses=("running",), status="completed")
    assert await runs.transition(run.run_id, from_statuses=("cancelled",), status="failed")
    await db_session.refresh(run)
    assert run.status == "failed"
