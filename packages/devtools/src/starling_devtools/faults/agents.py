"""The agents scenario: the process killed with runs queued, then started again on the same database."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path

from starling_devtools import harness
from starling_devtools.faults.common import RUN_SCOPES, Options, no_unfinished_runs
from starling_devtools.harness import logs


def long_text(rng: random.Random, sentences: int) -> str:
    words = ["agents", "summarize", "long", "texts", "for", "users", "while", "queued", "runs", "wait"]
    return " ".join(" ".join(rng.choices(words, k=12)).capitalize() + "." for _ in range(sentences))


async def agents_killed(options: Options, directory: Path) -> list[harness.Check]:
    # The run being worked on at the kill keeps its lease until it runs out: a short lease lets the
    # restarted process take it within seconds instead of the default 30.
    settings = {"agents": {"STARLING_AGENTS_WORKERS": "1", "STARLING_AGENTS_RUN_LEASE": "2"}}
    rng = random.Random(7)  # noqa: S311 - reproducible input, not a secret
    texts = [long_text(rng, 400) for _ in range(8)]
    accepted: set[str] = set()
    recorder = harness.Recorder()

    with harness.run(directory, root=options.root, names=["agents"], settings=settings) as stack:
        url, service = stack.databases.urls["agents"], stack.urls["agents"]
        token = stack.environment.mint("faults-agents", RUN_SCOPES)
        async with harness.http_client(connections=16, seconds=30.0) as client:
            semaphore = asyncio.Semaphore(16)

            async def submit(number: int) -> None:
                body = {
                    "agent_id": "summarizer",
                    "input_text": texts[number % len(texts)],
                    "background": True,
                }
                async with semaphore:
                    response = await recorder.request(
                        client,
                        "agents.run_background",
                        "POST",
                        f"{service}/api/v1/agents/run",
                        json=body,
                        headers=harness.bearer(token),
                    )
                if response is not None and response.status_code == 202:
                    accepted.add(response.json()["run_id"])

            await asyncio.gather(*(submit(number) for number in range(options.runs)))
        stack.kill("agents")
        at_kill = Counter(row[0] for row in await harness.query(url, "SELECT status FROM runs"))
        await asyncio.to_thread(stack.start, ["agents"])
        began = time.monotonic()
        drained = await harness.wait_for(lambda: no_unfinished_runs(url), within=120, interval=0.2)
        took = time.monotonic() - began
    rows = await harness.query(url, "SELECT run_id, status FROM runs")
    final = Counter(row[1] for row in rows)
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
        harness.check(
            "every run finished after the restart, once",
            drained
            and {row[0] for row in rows} == accepted
            and len(rows) == len(accepted)
            and final == {"completed": len(accepted)},
            f"{dict(final)} {took:.1f} s after the restart was healthy; "
            f"{len(rows)} rows for {len(accepted)} accepted",
        ),
        logs.tracebacks_check(stack.logs),
    ]
