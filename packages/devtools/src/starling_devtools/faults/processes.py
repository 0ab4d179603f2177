"""The processes scenario: agents served by two processes, one SIGKILLed while both run LLM agents.

A fake chat-completions endpoint counts the calls per input text, so a run executed twice shows as
an input answered twice. Only the runs the killed child was working on may run again (after their
lease runs out); none of the surviving child's, and no queued run, may.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

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
async def serve_fake_llm(app: Starlette) -> AsyncIterator[str]:
    """`app` on a free loopback port; yields its base URL."""
    port = harness.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    try:
        if not await harness.wait_for(lambda: _started(server), within=15):
            raise RuntimeError("the fake LLM endpoint did not start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def _started(server: uvicorn.Server) -> bool:
    return server.started


def serve_children(parent: int) -> list[psutil.Process]:
    """The uvicorn children of a `starling_core.serve` parent (not multiprocessing's helpers)."""
    return [
        child
        for child in psutil.Process(parent).children()
        if "spawn_main" in " ".join(child.cmdline()) and "resource_tracker" not in " ".join(child.cmdline())
    ]


async def agents_processes(options: Options, directory: Path) -> list[harness.Check]:
    llm = FakeLLM()
    texts = [f"question {number:03d}" for number in range(options.runs // 4)]
    accepted: set[str] = set()

    async with serve_fake_llm(llm.app) as llm_url:
        settings = {
            "agents": {
                "STARLING_AGENTS_WORKERS": str(WORKERS_PER_PROCESS),
                "STARLING_AGENTS_RUN_LEASE": "2",
                "STARLING_AGENTS_LLM_BASE_URL": llm_url,
            }
        }
        run = harness.run(
            directory, root=options.root, names=["agents"], settings=settings, scale={"agents": 2}
        )
        with run as stack:
            url, service, log = stack.databases.urls["agents"], stack.urls["agents"], stack.logs["agents"]
            running = stack.running["agents"]
            admin = stack.environment.mint("faults-processes", RUN_SCOPES)
            # Healthy means one child serves; killing one still starting would stop the whole server.
            if not await harness.wait_for(lambda: _all_serving(log), within=60):
                raise RuntimeError(f"serve did not report both children serving: see {log}")
            before = {child.pid for child in serve_children(running.pid)}
            async with harness.http_client(connections=8, seconds=30.0) as client:
                agent = {"agent_id": "oracle", "name": "Oracle", "kind": "llm", "config": {"model": "fake"}}
                created = await client.post(
                    f"{service}/api/v1/agents", json=agent, headers=harness.bearer(admin)
                )
                created.raise_for_status()
                for text in texts:
                    body = {"agent_id": "oracle", "input_text": text, "background": True}
                    response = await client.post(
                        f"{service}/api/v1/agents/run", json=body, headers=harness.bearer(admin)
                    )
                    if response.status_code == 202:
                        accepted.add(response.json()["run_id"])
            # Both children are working (each took runs it accepted) when one of them dies.
            await harness.wait_for(_calls_at_least(llm, 2 * WORKERS_PER_PROCESS), within=30)
            victim = max(before)
            in_flight_at_kill = sum(llm.calls.values())
            psutil.Process(victim).send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            drained = await harness.wait_for(lambda: no_unfinished_runs(url), within=120, interval=0.2)
            took = time.monotonic() - killed_at
            after = {child.pid for child in serve_children(running.pid)}

    rows = await harness.query(url, "SELECT run_id, status FROM runs")
    final = Counter(row[1] for row in rows)
    twice = {text: count for text, count in llm.calls.items() if count > 1}
    return [
        harness.check(
            "a child was killed with runs in flight and replaced",
            victim not in after and len(after) == 2 and in_flight_at_kill > 0,
            f"children {sorted(before)} -> {sorted(after)}; {in_flight_at_kill} LLM calls made at the kill",
        ),
        harness.check(
            "every accepted run completed",
            drained and {row[0] for row in rows} == accepted and final == {"completed": len(accepted)},
            f"{dict(final)} for {len(accepted)} accepted, {took:.1f} s after the kill",
        ),
        harness.check(
            "no run executed twice but the killed child's own",
            set(llm.calls) == set(texts) and len(twice) <= WORKERS_PER_PROCESS,
            f"{len(llm.calls)} of {len(texts)} inputs called; called more than once: {twice or 'none'} "
            f"(at most {WORKERS_PER_PROCESS}, the runs the killed child held)",
        ),
        logs.tracebacks_check(stack.logs),
    ]


def _calls_at_least(llm: FakeLLM, count: int) -> Callable[[], Awaitable[bool]]:
    async def enough() -> bool:
        return sum(llm.calls.values()) >= count

    return enough


async def _all_serving(log: Path) -> bool:
    return "with 2 processes" in await asyncio.to_thread(log.read_text, errors="replace")
