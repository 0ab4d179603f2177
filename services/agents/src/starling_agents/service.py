"""Use cases: the agent catalogue, running agents (now or in the background), reading and cancelling runs,
and cancelling a deleted user's runs.

The services are built once, in the app's lifespan, on the repository layer's `AgentsStores`, and open
their own sessions and transactions; they return the stored `Agent` and `Run`. A run that ends
(completed, failed or cancelled) writes `run.finished` to core's outbox in the transaction that ends it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from starling_agents import runners
from starling_agents.errors import AgentExists, AgentNotFound, LLMEndpointRefused, RunFinished, RunNotFound
from starling_agents.events import RunEvents, done_event, output_event, status_event
from starling_agents.gateways import ChatCompletionsGateway
from starling_agents.models import UNFINISHED, Agent, Run, utcnow
from starling_agents.outbound import OutboundPolicy
from starling_agents.repository import AgentsRepositories, AgentsStores, CatalogueRow, RunRepository
from starling_agents.runners import Outcome
from starling_agents.schemas import (
    AnyAgentIn,
    ClassifierConfig,
    LLMConfig,
    RunIn,
    RunsQuery,
    SummarizerConfig,
    UserDeleted,
    parse_config,
)
from starling_core.db import DatabaseUnavailable
from starling_core.events import Event
from starling_core.pagination import InvalidCursor, decode_cursor, encode_cursor
from starling_core.validation import as_utc

logger = logging.getLogger("starling.agents")

BUILTIN_AGENTS: tuple[dict[str, Any], ...] = (
    {
        "agent_id": "summarizer",
        "name": "Summarizer",
        "description": "Extractive summary: the highest-scoring sentences, in their original order.",
        "kind": "summarizer",
        "config": {"max_sentences": 3},
    },
    {
        "agent_id": "classifier",
        "name": "Sentiment classifier",
        "description": "Labels the input positive, negative or neutral by keyword hits, with the scores.",
        "kind": "classifier",
        "config": {
            "labels": {
                "positive": ["good", "great", "excellent", "love", "happy", "wonderful", "best", "amazing"],
                "negative": ["bad", "terrible", "awful", "hate", "poor", "worst", "broken", "disappointing"],
                "neutral": ["okay", "ok", "fine", "average", "neutral", "mixed"],
            }
        },
    },
)


@dataclass(frozen=True)
class Actor:
    sub: str
    is_admin: bool = False


# --- the catalogue ---------------------------------------------------------------------------------


class AgentsService:
    def __init__(self, stores: AgentsStores, outbound: OutboundPolicy | None = None) -> None:
        self.stores = stores
        # Where llm agents may send requests and with which key; by default nowhere.
        self.outbound = outbound if outbound is not None else OutboundPolicy(allowed_hosts=())

    async def listing(self) -> Sequence[CatalogueRow]:
        """The catalogue: each agent's id, name, description and kind, by id."""
        async with self.stores.reading() as repositories:
            return await repositories.agents.listing()

    async def get(self, agent_id: str) -> Agent:
        async with self.stores.reading() as repositories:
            agent = await repositories.agents.get(agent_id)
        if agent is None:
            raise AgentNotFound(agent_id)
        return agent

    async def create(self, data: AnyAgentIn) -> Agent:
        """Add the agent; `AgentExists` when its id is taken, `LLMEndpointRefused` when it may not call
        its endpoint (the same check is made again before every request)."""
        if isinstance(data.config, LLMConfig) and (refusal := self.outbound.refusal(data.config)):
            raise LLMEndpointRefused(refusal)
        agent = Agent(
            agent_id=data.agent_id,
            name=data.name,
            description=data.description,
            kind=data.kind,
            config=data.config.model_dump(mode="json", exclude_none=True),
            created_at=utcnow(),
        )
        async with self.stores.writing() as repositories:
            return await repositories.agents.add(agent)

    async def delete(self, agent_id: str) -> None:
        async with self.stores.writing() as repositories:
            agent = await repositories.agents.get(agent_id)
            if agent is None:
                raise AgentNotFound(agent_id)
            await repositories.agents.delete(agent)

    async def ensure_builtins(self) -> list[str]:
        """Insert the built-in agents that are absent; the ids inserted."""
        added = []
        async with self.stores.writing() as repositories:
            for builtin in BUILTIN_AGENTS:
                if await repositories.agents.get(builtin["agent_id"]) is None:
                    try:
                        await repositories.agents.add(Agent(**builtin, created_at=utcnow()))
                    except AgentExists:
                        continue  # a sibling process starting at the same moment inserted it
                    added.append(builtin["agent_id"])
        return added


# --- running agents --------------------------------------------------------------------------------


class Executor(Protocol):
    async def __call__(self, kind: str, config: dict[str, Any], text: str) -> Outcome: ...


class AgentExecutor:
    """Runs an agent of any kind; `llm` agents go through the gateway."""

    def __init__(self, llm: ChatCompletionsGateway | None = None) -> None:
        self.llm = llm

    async def __call__(self, kind: str, config: dict[str, Any], text: str) -> Outcome:
        parsed = parse_config(kind, config)
        if isinstance(parsed, SummarizerConfig):
            return runners.run_summarizer(text, parsed.max_sentences)
        if isinstance(parsed, ClassifierConfig):
            return runners.run_classifier(text, parsed.labels)
        assert isinstance(parsed, LLMConfig)
        if self.llm is None:
            return Outcome(output=None, token_usage=0, error="No LLM client is configured")
        return await self.llm.complete(parsed, text)


class RunsService:
    """Runs span several transactions (an LLM call must not hold one open): each step opens its own."""

    def __init__(
        self,
        stores: AgentsStores,
        executor: Executor,
        events: RunEvents,
        enqueue: Callable[[str], None],
        *,
        lease: float = 30.0,
    ) -> None:
        self.stores = stores
        self.executor = executor
        self.events = events
        self.enqueue = enqueue
        # Seconds this process holds a run it works on before another may take it (see `_held`).
        self.lease = lease
        self.holder = uuid.uuid4().hex  # this process, in the runs it holds

    async def start(self, actor: Actor, data: RunIn) -> Run:
        """Run now and return the finished run, or queue it (`background`) and return it queued."""
        async with self.stores.reading() as repositories:
            agent = await repositories.agents.get(data.agent_id)
        if agent is None:
            raise AgentNotFound(data.agent_id)
        kind, config = agent.kind, dict(agent.config)
        now = utcnow()
        run = Run(
            agent_id=agent.agent_id,
            owner=actor.sub,
            status="queued" if data.background else "running",
            input_text=data.input_text,
            token_usage=0,
            created_at=now,
            started_at=None if data.background else now,
            lease_holder=None if data.background else self.holder,
            lease_expires_at=None if data.background else self._lease_from(now),
        )
        # The insert has a transaction of its own that writes first: on SQLite a transaction that
        # read before writing fails at once (SQLITE_BUSY_SNAPSHOT, no waiting helps) when another
        # writer committed in between, which concurrent runs do all the time. An agent deleted
        # meanwhile is harmless: runs outlive their agent, and a worker fails such a run cleanly.
        async with self.stores.writing() as repositories:
            await repositories.runs.add(run)
        if data.background:
            self.enqueue(run.run_id)
            return run
        async with self._held(run.run_id):
            outcome = await self._execute(kind, config, data.input_text)
        return await self._finish(run.run_id, outcome)

    async def process(self, run_id: str) -> None:
        """A worker's job: take a queued run (or one whose holder died), run it, store the outcome."""
        async with self.stores.writing() as repositories:
            runs = repositories.runs
            now = utcnow()
            if not await runs.claim(run_id, self.holder, now, self._lease_from(now)):
                return  # cancelled, finished, or held by another process
            run = await runs.get(run_id)
            assert run is not None
            agent = await repositories.agents.get(run.agent_id)
            text = run.input_text
            kind, config = (agent.kind, dict(agent.config)) if agent is not None else (None, {})
        self.events.publish(run_id, status_event("running"))
        if kind is None:
            outcome = Outcome(output=None, token_usage=0, error=str(AgentNotFound(run.agent_id)))
        else:
            async with self._held(run_id):
                outcome = await self._execute(kind, config, text)
        await self._finish(run_id, outcome)

    def _lease_from(self, now: datetime) -> datetime:
        return now + timedelta(seconds=self.lease)

    @asynccontextmanager
    async def _held(self, run_id: str) -> AsyncIterator[None]:
        """Renew this process's lease on the run every third of it while the block runs.

        Without it, a run longer than the lease would look abandoned and a second process would
        run it again. A renewal that fails (the database is down) is tried at the next beat. The
        heartbeat is told to stop rather than cancelled: cancelled mid-statement, it would take
        its connection down with it.
        """
        done = asyncio.Event()

        async def beat() -> None:
            while True:
                try:
                    await asyncio.wait_for(done.wait(), timeout=self.lease / 3)
                    return  # the block is over
                except TimeoutError:
                    pass  # a third of the lease went by: renew it
                try:
                    async with self.stores.writing() as repositories:
                        lease_until = self._lease_from(utcnow())
                        if not await repositories.runs.renew(run_id, self.holder, lease_until):
                            return  # cancelled, or taken over: nothing left to hold
                except DatabaseUnavailable as exc:
                    logger.warning("lease on run %s not renewed: %s", run_id, exc)

        heartbeat = asyncio.create_task(beat(), name=f"agents-lease-{run_id}")
        try:
            yield
        finally:
            done.set()
            await heartbeat

    async def claimable(self) -> list[str]:
        """Runs no process holds, for the workers' scan."""
        async with self.stores.reading() as repositories:
            return await repositories.runs.claimable_ids(utcnow())

    async def get(self, actor: Actor, run_id: str) -> Run:
        async with self.stores.reading() as repositories:
            return await _visible_run(repositories.runs, actor, run_id)

    async def find(self, actor: Actor, run_id: str) -> Run | None:
        """The run if `actor` may see it, else None: for the events socket, which answers with a close
        code (4404) where an HTTP route lets `RunNotFound` become its 404."""
        async with self.stores.reading() as repositories:
            run = await repositories.runs.get(run_id)
        return run if run is not None and _may_see(actor, run) else None

    async def list_page(self, actor: Actor, query: RunsQuery) -> tuple[list[Run], str | None]:
        """One page in (created_at, run_id) order and the cursor of the next, None on the last page."""
        after = _decode_key(query.cursor) if query.cursor else None
        async with self.stores.reading() as repositories:
            runs = list(
                await repositories.runs.page(
                    limit=query.limit + 1,
                    owner=None if actor.is_admin else actor.sub,
                    status=query.status,
                    agent_id=query.agent_id,
                    since=query.since,
                    after=after,
                )
            )
        if len(runs) <= query.limit:
            return runs, None
        last = runs[query.limit - 1]
        return runs[: query.limit], encode_cursor({"created_at": last.created_at, "run_id": last.run_id})

    async def cancel(self, actor: Actor, run_id: str) -> Run:
        async with self.stores.reading() as repositories:
            run = await _visible_run(repositories.runs, actor, run_id)
        if run.status not in UNFINISHED:
            raise RunFinished(run.run_id, run.status)
        # Writing first, for the reason given in `start`; the guarded UPDATE decides a race with a worker.
        async with self.stores.writing() as repositories:
            cancelled = await repositories.runs.transition(
                run_id, from_statuses=UNFINISHED, status="cancelled", finished_at=utcnow()
            )
            stored = await repositories.runs.stored(run_id)
            assert stored is not None
            if cancelled:
                await repositories.runs.announce_finished(stored)
        if not cancelled:
            raise RunFinished(stored.run_id, stored.status)
        self.events.publish(run_id, done_event("cancelled"))
        return stored

    async def _execute(self, kind: str, config: dict[str, Any], text: str) -> Outcome:
        try:
            return await self.executor(kind, config, text)
        except Exception:
            logger.exception("agent of kind %s failed", kind)
            return Outcome(output=None, token_usage=0, error="The agent failed unexpectedly")

    async def _finish(self, run_id: str, outcome: Outcome) -> Run:
        status = "failed" if outcome.failed else "completed"
        async with self.stores.writing() as repositories:
            # Only a run still `running` is finished: a cancel that came meanwhile stands.
            finished = await repositories.runs.transition(
                run_id,
                from_statuses=("running",),
                status=status,
                output=outcome.output,
                token_usage=outcome.token_usage,
                error=outcome.error,
                finished_at=utcnow(),
            )
            run = await repositories.runs.stored(run_id)
            assert run is not None
            if finished:
                # In the transaction that finished it: the event exists exactly when the outcome does.
                await repositories.runs.announce_finished(run)
        if finished:
            if run.output is not None:
                self.events.publish(run_id, output_event(run.output))
            self.events.publish(run_id, done_event(run.status))
        return run

    async def user_deleted(self, event: Event[UserDeleted], stored: AgentsRepositories) -> None:
        """`user.deleted` from `users.users`: the user's queued and running runs are cancelled, each
        announced with `run.finished`, in the consumer's transaction beside its inbox row, so a
        redelivered event changes nothing. (Their tokens end in core: `starling_core.revocations`.)"""
        cancelled = await stored.runs.cancel_unfinished_of(event.payload.user_id, utcnow())
        for run in cancelled:
            await stored.runs.announce_finished(run)
        if cancelled:
            logger.info("cancelled %d runs of deleted user %s", len(cancelled), event.payload.user_id)


async def _visible_run(runs: RunRepository, actor: Actor, run_id: str) -> Run:
    # Someone else's run is "not found", never "forbidden": run ids are not to be probed.
    run = await runs.get(run_id)
    if run is None or not _may_see(actor, run):
        raise RunNotFound(run_id)
    return run


def _may_see(actor: Actor, run: Run) -> bool:
    return actor.is_admin or run.owner == actor.sub


def _decode_key(cursor: str) -> tuple[datetime, str]:
    values = decode_cursor(cursor)
    try:
        created_at = datetime.fromisoformat(values["created_at"])
        run_id = values["run_id"]
        if not isinstance(run_id, str) or created_at.tzinfo is None:
            raise ValueError("not a key this service wrote")
        return as_utc(created_at), run_id  # ValueError when its UTC is out of range
    except (KeyError, TypeError, ValueError):
        raise InvalidCursor("Invalid cursor") from None
