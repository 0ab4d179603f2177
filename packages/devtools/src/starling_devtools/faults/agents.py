"""The agents scenarios: background runs survive their process being killed.

`agents`: one worker process SIGKILLed with runs queued, then started again on the same database.
`processes`: agents served by two processes running `llm` agents against a fake chat-completions
endpoint that counts the calls per input text, so a run executed twice shows as an input answered
twice; one child is SIGKILLed mid-work. Only the runs the killed child was working on may run again
(after their lease runs out); none of the surviving child's, and no queued run, may.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
import psutil
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_devtools import harness
from starling_devtools.faults.common import RUN_SCOPES, Options, no_unfinished_runs
from starling_devtools.harness import logs

WORKERS_PER_PROCESS = 2
LLM_LATENCY = 0.2  # seconds each fake completion takes: runs are in flight when the child is killed
# The run being worked on at a kill keeps its lease until it runs out: a short lease lets another
# process take it within seconds instead of the default 30.
SHORT_LEASE = {"STARLING_AGENTS_RUN_LEASE": "2"}


def long_text(rng: random.Random, sentences: int) -> str:
    words = ["agents", "summarize", "long", "texts", "for", "users", "while", "queued", "runs", "wait"]
    return " ".join(" ".join(rng.choices(words, k=12)).capitalize() + "." for _ in range(sentences))


async def queue_runs(
    stack: harness.Stack, agent_id: str, texts: Sequence[str], count: int, recorder: harness.Recorder
) -> set[str]:
    """`count` background runs of `agent_id` over `texts`, 16 at a time; the ids of those answered 202."""
    service, token = stack.urls["agents"], stack.environment.mint("faults-agents", RUN_SCOPES)
    async with harness.http_client(connections=16, seconds=30.0) as client:
        answers = await asyncio.gather(
            *(
                recorder.request(
                    client,
                    "agents.run_background",
                    "POST",
                    f"{service}/api/v1/agents/run",
                    json={"agent_id": agent_id, "input_text": texts[n % len(texts)], "background": True},
                    headers=harness.bearer(token),
                )
                for n in range(count)
            )
        )
    return {answer.json()["run_id"] for answer in answers if answer is not None and answer.status_code == 202}


async def finished(url: str, accepted: set[str], took: float, since: str) -> harness.Check:
    """Every accepted run in the database at `url`, once, completed."""
    rows = await harness.query(url, "SELECT run_id, status FROM runs")
    final = Counter(row[1] for row in rows)
    return harness.check(
        "every accepted run finished, once",
        {row[0] for row in rows} == accepted and final == {"completed": len(accepted)},
        f"{dict(final)} for {len(accepted)} accepted in {len(rows)} rows, {took:.1f} s after {since}",
    )


async def drain(url: str) -> float:
    """Seconds until no run at `url` is queued or running; -1.0 if that takes over two minutes."""
    began = time.monotonic()
    drained = await harness.wait_for(lambda: no_unfinished_runs(url), within=120, interval=0.2)
    return time.monotonic() - began if drained else -1.0


async def agents_killed(options: Options, directory: Path) -> list[harness.Check]:
    settings = {"agents": {"STARLING_AGENTS_WORKERS": "1", **SHORT_LEASE}}
    rng = random.Random(7)  # noqa: S311 - reproducible input, not a secret
    texts = [long_text(rng, 400) for _ in range(8)]
    recorder = harness.Recorder()
    with harness.run(directory, root=options.root, names=["agents"], settings=settings) as stack:
        url = stack.databases.urls["agents"]
        accepted = await queue_runs(stack, "summarizer", texts, options.runs, recorder)
        stack.kill("agents")
        at_kill = Counter(row[0] for row in await harness.query(url, "SELECT status FROM runs"))
        await asyncio.to_thread(stack.start, ["agents"])
        took = await drain(url)
    unfinished_at_kill = at_kill.get("queued", 0) + at_kill.get("running", 0)
    return [
        harness.check(
            "runs accepted before the kill",
            len(accepted) == options.runs,
            f"{len(accepted)} of {options.runs} answered 202 {dict(recorder.statuses)}",
        ),
        harness.check(
            "the kill left runs unfinished",
            unfinished_at_kill > 0,
            f"at SIGKILL: {dict(at_kill)}"
            + ("" if unfinished_at_kill else " (nothing to recover: raise --runs)"),
        ),
        await finished(url, accepted, took, "the restart was healthy"),
        logs.tracebacks_check(stack.logs),
    ]


class FakeLLM:
    """`POST /v1/chat/completions`, answering after `LLM_LATENCY`, counting calls per user message."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.app = Starlette(routes=[Route("/v1/chat/completions", self.complete, methods=["POST"])])

    async def complete(self, request: Request) -> JSONResponse:
        text = (await request.json())["messages"][-1]["content"]
        self.calls[text] += 1
        await asyncio.sleep(LLM_LATENCY)  # the model "thinking": the work the runs are made of
        return JSONResponse(
            {"choices": [{"message": {"content": f"answer to {text}"}}], "usage": {"total_tokens": 3}}
        )

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[str]:
        """On a free loopback port; yields its base URL."""
        port = harness.free_port()
        server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        try:
            if not await harness.wait_for(lambda: server.started, within=15):
                raise RuntimeError("the fake LLM endpoint did not start")
            yield f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            await task


def serve_children(parent: int) -> set[int]:
    """The uvicorn children of a `starling_core.serve` parent (not multiprocessing's helpers)."""
    commands = {child.pid: " ".join(child.cmdline()) for child in psutil.Process(parent).children()}
    return {pid for pid, line in commands.items() if "spawn_main" in line and "resource_tracker" not in line}


async def agents_processes(options: Options, directory: Path) -> list[harness.Check]:
    llm = FakeLLM()
    texts = [f"question {number:03d}" for number in range(options.runs // 4)]
    async with llm.serving() as llm_url:
        agents = {
            "STARLING_AGENTS_WORKERS": str(WORKERS_PER_PROCESS),
            "STARLING_AGENTS_LLM_BASE_URL": llm_url,
        }
        run = harness.run(
            directory,
            root=options.root,
            names=["agents"],
            settings={"agents": agents | SHORT_LEASE},
            scale={"agents": 2},
        )
        with run as stack:
            url, log = stack.databases.urls["agents"], stack.logs["agents"]
            parent = stack.running["agents"].pid
            # Healthy means one child serves; killing one still starting would stop the whole server.
            serving = await harness.wait_for(lambda: "with 2 processes" in log.read_text(), within=60)
            if not serving:
                raise RuntimeError(f"serve did not report both children serving: see {log}")
            before = serve_children(parent)
            agent = {"agent_id": "oracle", "name": "Oracle", "kind": "llm", "config": {"model": "fake"}}
            token = harness.bearer(stack.environment.mint("faults-processes", RUN_SCOPES))
            async with httpx.AsyncClient(timeout=30.0) as client:
                created = await client.post(
                    f"{stack.urls['agents']}/api/v1/agents", json=agent, headers=token
                )
            created.raise_for_status()
            accepted = await queue_runs(stack, "oracle", texts, len(texts), harness.Recorder())
            # Both children are working (each took runs it accepted) when one of them dies.
            await harness.wait_for(lambda: llm.calls.total() >= 2 * WORKERS_PER_PROCESS, within=30)
            victim, in_flight_at_kill = max(before), llm.calls.total()
            psutil.Process(victim).send_signal(signal.SIGKILL)
            took = await drain(url)
            after = serve_children(parent)
    twice = {text: count for text, count in llm.calls.items() if count > 1}
    return [
        harness.check(
            "a child was killed with runs in flight and replaced",
            victim not in after and len(after) == 2 and in_flight_at_kill > 0,
            f"children {sorted(before)} -> {sorted(after)}; {in_flight_at_kill} LLM calls made at the kill",
        ),
        await finished(url, accepted, took, "the kill"),
        harness.check(
            "no run executed twice but the killed child's own",
            set(llm.calls) == set(texts) and len(twice) <= WORKERS_PER_PROCESS,
            f"{len(llm.calls)} of {len(texts)} inputs called; called more than once: {twice or 'none'} "
            f"(at most {WORKERS_PER_PROCESS}, the runs the killed child held)",
        ),
        logs.tracebacks_check(stack.logs),
    ]
