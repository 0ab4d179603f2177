"""The service's rules with doubles handed in: a scripted executor, a recording queue, real events."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from starling_agents.errors import AgentExists, AgentNotFound, RunFinished, RunNotFound
from starling_agents.events import RunEvents
from starling_agents.models import utcnow
from starling_agents.repository import AgentsStores, RunRepository
from starling_agents.runners import Outcome
from starling_agents.schemas import AgentCreate, RunIn, RunsQuery
from starling_agents.service import Actor, AgentExecutor, AgentsService, RunsService
from starling_core.pagination import InvalidCursor
from starling_testkit import BoundDatabase

from .factories import add_builtins, add_run

OWNER = Actor(sub="test-user-001")
OTHER = Actor(sub="someone-else")
ADMIN = Actor(sub="admin", is_admin=True)


class ScriptedExecutor:
    """Answers every run with `outcome`, after running `during` (a hook into the middle of a run)."""

    def __init__(self, outcome: Outcome, during: Callable[[], Awaitable[Any]] | None = None) -> None:
        self.outcome = outcome
        self.during = during
        self.calls: list[tuple[str, str]] = []

    async def __call__(self, kind: str, config: dict[str, Any], text: str) -> Outcome:
        self.calls.append((kind, text))
        if self.during is not None:
            await self.during()
        return self.outcome


class Harness:
    def __init__(self, database: BoundDatabase, executor: ScriptedExecutor, lease: float = 30.0) -> None:
        self.database = database
        self.enqueued: list[str] = []
        self.events = RunEvents()
        self.executor = executor
        self.runs = RunsService(
            AgentsStores(database), executor, self.events, self.enqueued.append, lease=lease
        )


@pytest.fixture
async def harness(app_database: BoundDatabase, db_session: AsyncSession) -> Harness:
    await add_builtins(db_session)
    return Harness(app_database, ScriptedExecutor(Outcome(output="done", token_usage=5)))


async def test_a_synchronous_run_is_stored_finished(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hello."))
    assert (run.status, run.output, run.token_usage, run.owner) == ("completed", "done", 5, OWNER.sub)
    assert run.finished_at is not None
    assert harness.executor.calls == [("summarizer", "Hello.")]
    assert harness.enqueued == []


async def test_an_executor_error_fails_the_run(harness: Harness) -> None:
    harness.executor.outcome = Outcome(output=None, token_usage=0, error="upstream down")
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hello."))
    assert (run.status, run.error) == ("failed", "upstream down")


async def test_an_unknown_agent_is_refused(harness: Harness) -> None:
    with pytest.raises(AgentNotFound, match="Agent nope not found"):
        await harness.runs.start(OWNER, RunIn(agent_id="nope", input_text="Hello."))


async def test_a_background_run_is_queued_and_enqueued_without_running(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    assert run.status == "queued"
    assert harness.enqueued == [run.run_id]
    assert harness.executor.calls == []


async def test_processing_publishes_status_output_and_done(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    with harness.events.subscribe(run.run_id) as queue:
        await harness.runs.process(run.run_id)
        events = [queue.get_nowait() for _ in range(queue.qsize())]
    assert events == [
        {"type": "status", "status": "running"},
        {"type": "output", "output": "done"},
        {"type": "done", "status": "completed"},
    ]
    assert (await harness.runs.get(OWNER, run.run_id)).status == "completed"


async def test_processing_a_cancelled_run_does_nothing(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    await harness.runs.cancel(OWNER, run.run_id)
    await harness.runs.process(run.run_id)
    assert harness.executor.calls == []
    assert (await harness.runs.get(OWNER, run.run_id)).status == "cancelled"


async def test_a_cancel_during_the_run_is_not_overwritten_by_its_result(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    harness.executor.during = lambda: harness.runs.cancel(OWNER, run.run_id)
    await harness.runs.process(run.run_id)
    stored = await harness.runs.get(OWNER, run.run_id)
    assert (stored.status, stored.output) == ("cancelled", None)


async def test_a_run_held_by_another_process_is_not_run_here(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    async with harness.database.transaction() as session:
        now = utcnow()
        assert await RunRepository(session).claim(
            run.run_id, "another-process", now, now + timedelta(seconds=30)
        )
    await harness.runs.process(run.run_id)
    assert harness.executor.calls == []
    assert (await harness.runs.get(OWNER, run.run_id)).status == "running"


async def test_a_run_this_process_holds_is_taken_again_on_a_retry(harness: Harness) -> None:
    # A worker whose run met a database outage retries it while still holding its lease.
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    async with harness.database.transaction() as session:
        now = utcnow()
        assert await RunRepository(session).claim(
            run.run_id, harness.runs.holder, now, now + timedelta(seconds=30)
        )
    await harness.runs.process(run.run_id)
    assert (await harness.runs.get(OWNER, run.run_id)).status == "completed"


async def test_a_long_run_keeps_renewing_its_lease(
    app_database: BoundDatabase, db_session: AsyncSession
) -> None:
    await add_builtins(db_session)
    release = asyncio.Event()
    renewed: list[object] = []
    executor = ScriptedExecutor(Outcome(output="done", token_usage=1), during=release.wait)
    harness = Harness(app_database, executor, lease=0.06)  # renewed every 20 ms
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hi.", background=True))
    processing = asyncio.create_task(harness.runs.process(run.run_id))

    async def lease() -> object:
        async with harness.database.session() as session:
            stored = await RunRepository(session).get(run.run_id)
            assert stored is not None
            return stored.lease_expires_at

    try:
        for _ in range(500):  # polling a row that another task writes on a timer, for up to ~5 s
            renewed.append(await lease())
            if len(set(renewed)) == 3:  # the claim's lease, then two renewals
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail(f"the lease was not renewed: {sorted(set(renewed), key=str)}")
    finally:
        release.set()
        await processing
    assert (await harness.runs.get(OWNER, run.run_id)).status == "completed"


async def test_a_finished_run_cannot_be_cancelled(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hello."))
    with pytest.raises(RunFinished, match="already completed"):
        await harness.runs.cancel(OWNER, run.run_id)


async def test_someone_elses_run_is_not_found_but_an_admin_sees_it(harness: Harness) -> None:
    run = await harness.runs.start(OWNER, RunIn(agent_id="summarizer", input_text="Hello."))
    with pytest.raises(RunNotFound):
        await harness.runs.get(OTHER, run.run_id)
    with pytest.raises(RunNotFound):
        await harness.runs.cancel(OTHER, run.run_id)
    assert (await harness.runs.get(ADMIN, run.run_id)).run_id == run.run_id


async def test_pages_follow_the_cursor_to_the_end(harness: Harness, db_session: AsyncSession) -> None:
    ids = [(await add_run(db_session, minutes=minute)).run_id for minute in range(5)]
    await add_run(db_session, minutes=9, owner=OTHER.sub)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        runs, cursor = await harness.runs.list_page(OWNER, RunsQuery(limit=2, cursor=cursor))
        seen += [run.run_id for run in runs]
        if cursor is None:
            break
    assert seen == ids
    assert len((await harness.runs.list_page(ADMIN, RunsQuery()))[0]) == 6


async def test_a_forged_cursor_is_refused(harness: Harness) -> None:
    with pytest.raises(InvalidCursor):
        await harness.runs.list_page(OWNER, RunsQuery(cursor="eyJ4IjoxfQ"))


async def test_built_ins_are_inserted_once(app_database: BoundDatabase) -> None:
    agents = AgentsService(AgentsStores(app_database))
    assert await agents.ensure_builtins() == ["summarizer", "classifier"]
    assert await agents.ensure_builtins() == []


async def test_an_agent_id_is_taken_once(app_database: BoundDatabase) -> None:
    agents = AgentsService(AgentsStores(app_database))
    data = AgentCreate.model_validate({"agent_id": "short", "name": "Short", "kind": "summarizer"}).root
    created = await agents.create(data)
    assert created.config == {"max_sentences": 3}
    with pytest.raises(AgentExists):
        await agents.create(data)


async def test_the_executor_runs_built_ins_by_kind() -> None:
    executor = AgentExecutor()
    outcome = await executor("classifier", {"labels": {"yes": ["yes"], "no": ["no"]}}, "no no yes")
    assert outcome.output == '{"label": "no", "scores": {"yes": 1, "no": 2}}'
    assert (await executor("llm", {"model": "m"}, "hi")).error == "No LLM client is configured"
