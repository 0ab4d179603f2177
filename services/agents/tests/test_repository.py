"""The repositories' SQL on the test's own session."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from starling_agents.errors import AgentExists
from starling_agents.models import Agent
from starling_agents.repository import AgentRepository, RunRepository

from .factories import T0, add_builtins, add_run


async def test_agents_are_listed_by_id(db_session: AsyncSession) -> None:
    await add_builtins(db_session)
    assert [agent.agent_id for agent in await AgentRepository(db_session).all()] == [
        "classifier",
        "summarizer",
    ]


async def test_a_taken_agent_id_is_agent_exists_and_the_session_stays_usable(
    db_session: AsyncSession,
) -> None:
    await add_builtins(db_session)
    agents = AgentRepository(db_session)
    with pytest.raises(AgentExists, match="Agent summarizer already exists"):
        await agents.add(
            Agent(agent_id="summarizer", name="Again", kind="summarizer", config={}, created_at=T0)
        )
    assert [agent.agent_id for agent in await agents.all()] == ["classifier", "summarizer"]


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


async def test_claimable_runs_are_the_ones_no_process_holds_oldest_first(db_session: AsyncSession) -> None:
    now = T0 + timedelta(hours=1)
    abandoned = await add_run(
        db_session, minutes=3, status="running", lease_expires_at=now - timedelta(seconds=1)
    )
    unleased = await add_run(db_session, minutes=2, status="running")  # left by a process before leases
    queued = await add_run(db_session, minutes=1, status="queued")
    await add_run(db_session, status="running", lease_expires_at=now + timedelta(seconds=1))  # held
    await add_run(db_session, status="completed")
    await add_run(db_session, status="cancelled")
    assert await RunRepository(db_session).claimable_ids(now) == [
        queued.run_id,
        unleased.run_id,
        abandoned.run_id,
    ]


async def test_a_run_is_claimed_once_until_its_lease_runs_out(db_session: AsyncSession) -> None:
    runs = RunRepository(db_session)
    run = await add_run(db_session, status="queued")
    lease_until = T0 + timedelta(seconds=30)

    assert await runs.claim(run.run_id, "process-a", T0, lease_until)
    assert not await runs.claim(run.run_id, "process-b", T0 + timedelta(seconds=29), lease_until)
    assert await runs.claim(run.run_id, "process-a", T0 + timedelta(seconds=29), lease_until)  # a retry
    assert await runs.claim(run.run_id, "process-b", T0 + timedelta(seconds=31), T0 + timedelta(seconds=61))
    await db_session.refresh(run)
    assert (run.status, run.lease_holder, run.lease_expires_at) == (
        "running",
        "process-b",
        T0 + timedelta(seconds=61),
    )


async def test_a_lease_is_renewed_only_by_its_holder_while_the_run_is_running(
    db_session: AsyncSession,
) -> None:
    runs = RunRepository(db_session)
    running = await add_run(db_session, status="running", lease_holder="process-a", lease_expires_at=T0)
    cancelled = await add_run(db_session, status="cancelled", lease_holder="process-a", lease_expires_at=T0)
    later = T0 + timedelta(seconds=30)
    assert not await runs.renew(running.run_id, "process-b", later)
    assert await runs.renew(running.run_id, "process-a", later)
    assert not await runs.renew(cancelled.run_id, "process-a", later)
    await db_session.refresh(running)
    await db_session.refresh(cancelled)
    assert (running.lease_expires_at, cancelled.lease_expires_at) == (later, T0)


async def test_transition_changes_only_a_run_in_one_of_the_given_statuses(db_session: AsyncSession) -> None:
    runs = RunRepository(db_session)
    run = await add_run(db_session, status="cancelled")
    assert not await runs.transition(run.run_id, from_statuses=("running",), status="completed")
    assert await runs.transition(run.run_id, from_statuses=("cancelled",), status="failed")
    await db_session.refresh(run)
    assert run.status == "failed"
