"""The database scenario: PostgreSQL stops and comes back under the soak's callers.

Every service of the workspace runs on the cluster under the soak's load (`soak.callers`): users,
agents and reporting written to and read, and every other service read on its parameterless GETs
(`harness.openapi`), so that a new service meets the outage too. What the callers' answers
acknowledged is in their ledger, which the databases must hold afterwards.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from starling_devtools import harness
from starling_devtools.faults.common import CLIENT_TIMEOUT, Options, no_unfinished_runs, squeeze
from starling_devtools.harness import logs
from starling_devtools.soak.callers import Callers, callers_for, make_text
from starling_devtools.soak.verification import EXPECTED, Stored
from starling_servers.postgres import SERVER_OPTIONS, find_binaries

RUN_TEXT = " ".join(f"Sentence {n} of a long text that the summarizer reads for a while." for n in range(100))


@dataclass(frozen=True)
class PostgresControl:
    """Stops and starts the kit's throwaway cluster in place, as its owner (PostgreSQL refuses root)."""

    url: str
    data_dir: Path
    log: Path

    @property
    def port(self) -> int:
        port = urlsplit(self.url.replace("postgresql+asyncpg", "postgresql")).port
        assert port is not None
        return port

    def stop(self) -> None:
        # fast: roll back open transactions and close every connection, as a restart does
        self._pg_ctl("-m", "fast", "-w", "stop")

    def start(self) -> None:
        options = f"-p {self.port} -h 127.0.0.1 -k '' {SERVER_OPTIONS}"
        self._pg_ctl("-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def _pg_ctl(self, *args: str) -> None:
        owner = self.data_dir.stat()
        as_owner = os.geteuid() == 0 and owner.st_uid != 0
        subprocess.run(
            [str(find_binaries() / "pg_ctl"), "-D", str(self.data_dir), *args],
            check=True,
            capture_output=True,
            cwd="/",
            timeout=120,
            user=owner.st_uid if as_owner else None,
            group=owner.st_gid if as_owner else None,
        )


@dataclass
class Outage:
    """What the callers and the health monitor saw around the outage, and when each step came."""

    callers: Callers
    health: dict[str, list[int]] = field(default_factory=dict)
    max_latency: float = 0.0  # of /health
    timeline: dict[str, float] = field(default_factory=dict)
    at_recovery: Counter[tuple[str, int]] = field(default_factory=Counter)  # the answers until then

    async def monitor(self, client: httpx.AsyncClient, urls: dict[str, str]) -> None:
        while True:
            for name, url in urls.items():
                started = time.monotonic()
                try:
                    status = (await client.get(f"{url}/health")).status_code
                except httpx.HTTPError:
                    status = 0  # no answer: recorded, and it breaks the 200 -> 503 -> 200 sequence
                self.max_latency = max(self.max_latency, time.monotonic() - started)
                self.health.setdefault(name, []).append(status)
            await asyncio.sleep(0.1)

    def all_health(self, status: int) -> bool:
        return len(self.health) == len(self.callers.urls) and all(
            seen[-1] == status for seen in self.health.values()
        )


def long_text(rng: random.Random) -> str:
    # With one worker on long inputs a backlog of runs is waiting when the database goes, so some
    # runs meet the outage inside the worker, not only at the door (8-16 attempts postponed in the
    # runs measured on a hundred sentences; three hundred only made the backlog longer to drain).
    return f"{make_text(rng)} {RUN_TEXT}"


async def database_outage(options: Options, directory: Path) -> list[harness.Check]:
    # A run the outage caught mid-way (a synchronous one whose caller got the 503) stays `running`
    # until its lease runs out and a scan, every lease period, takes it up: with the default 30 s that
    # was the scenario's longest wait (drained at 60 s in two of four runs), with 2 s it is seconds.
    settings = {"agents": {"STARLING_AGENTS_WORKERS": "1", "STARLING_AGENTS_RUN_LEASE": "2"}}
    with harness.run(directory, root=options.root, db="postgres", settings=settings) as stack:
        cluster = stack.databases.cluster
        assert cluster is not None
        control = PostgresControl(cluster.url, cluster.data_dir, directory / "postgres" / "postgres.log")
        connections = options.writers * 3 + 6 + len(stack.urls)
        async with harness.http_client(connections=connections, seconds=CLIENT_TIMEOUT) as client:
            # the /health of every service is the monitor's: a health report, not an error with a `detail`
            outage = Outage(callers_for(stack, client, health=False))
            outage.callers.text = long_text
            await drive(options, control, outage, stack.databases.urls.get("agents"))
        stack.stop()  # the databases are read with the services gone, the cluster still up
        postponed = logs.occurrences(stack.logs.get("agents"), " postponed: ")
        stored = await Stored.read(stack.databases.urls) if outage.callers.writing else None
    return [*outage_checks(outage, stored, postponed), logs.tracebacks_check(stack.logs)]


async def drive(options: Options, control: PostgresControl, outage: Outage, agents: str | None) -> None:
    """Writes while everything is up, while the database is down, and after it came back."""
    callers, timeline = outage.callers, outage.timeline
    began = time.monotonic()
    tasks = [asyncio.create_task(outage.monitor(callers.client, callers.urls))]
    writers = [callers.caller(index, seed=1, deadline=math.inf) for index in range(options.writers)]
    tasks += [asyncio.create_task(writer) for writer in writers]
    try:
        await asyncio.sleep(2.0)
        await asyncio.to_thread(control.stop)
        timeline["stopped"] = time.monotonic() - began
        seen_down = await harness.wait_for(lambda: outage.all_health(503), within=15)
        timeline["all 503"] = time.monotonic() - began if seen_down else -1
        await asyncio.sleep(options.outage)
        await asyncio.to_thread(control.start)
        timeline["started"] = time.monotonic() - began
        recovered = await harness.wait_for(lambda: outage.all_health(200), within=30)
        timeline["all 200"] = time.monotonic() - began if recovered else -1
        outage.at_recovery = callers.recorder.statuses.copy()
        await asyncio.sleep(2.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    if agents is not None and callers.writing:
        drained = await harness.wait_for(lambda: no_unfinished_runs(agents), within=60, interval=0.2)
        timeline["drained"] = time.monotonic() - began if drained else -1


def outage_checks(outage: Outage, stored: Stored | None, postponed: int) -> list[harness.Check]:
    answers, ledger, urls = outage.callers.recorder, outage.callers.ledger, outage.callers.urls
    health = {name: squeeze(statuses) for name, statuses in outage.health.items()}
    statuses: Counter[int] = Counter()
    for (_, status), n in answers.statuses.items():
        statuses[status] += n
    unexpected = answers.unexpected(
        {label: EXPECTED.get(label, set(range(200, 300))) | {503} for label in answers.latencies}
    )
    unavailable = {
        label: answers.count(label=label, statuses=lambda s: s == 503) for label in answers.latencies
    }
    after_recovery: Counter[str] = Counter()
    for (label, status), n in (answers.statuses - outage.at_recovery).items():
        after_recovery[label.split(".")[0]] += n if 200 <= status < 300 else 0
    latencies = [t for values in answers.latencies.values() for t in values]
    held = stored or Stored(set(), {}, set(), {})
    lost_users = ledger.users - held.emails
    lost_runs = ledger.runs - held.runs.keys()
    lost_orders = ledger.orders.keys() - held.orders
    unfinished = Counter(
        status for run, status in held.runs.items() if run in ledger.runs and status != "completed"
    )
    when = ", ".join(f"{name} at {seconds:.1f} s" for name, seconds in outage.timeline.items())
    return [
        harness.check(
            "/health went 200 -> 503 -> 200",
            all(sequence == [200, 503, 200] for sequence in health.values()) and len(health) == len(urls),
            f"{ {name: '->'.join(map(str, seq)) for name, seq in health.items()} }; {when}",
        ),
        harness.check(
            "every write and read answered as expected or 503, never 500",
            not unexpected and all(unavailable.values()),
            f"{dict(sorted(statuses.items()))} over {answers.total} requests; "
            f"unexpected {dict(unexpected) or 'none'}; 503s by operation {unavailable}",
        ),
        harness.check(
            "every 503 has a JSON detail and Retry-After",
            not answers.bad_503,
            f"{statuses.get(503, 0)} 503s; without: {answers.bad_503[:2] or 'none'}",
        ),
        harness.check(
            f"no request hung (client timeout {CLIENT_TIMEOUT:.0f} s)",
            answers.failures() == 0,
            f"{answers.failures()} without an answer{f' {dict(answers.errors)}' if answers.errors else ''}; "
            f"slowest request {max(latencies, default=0) * 1000:.0f} ms, "
            f"slowest /health {outage.max_latency * 1000:.0f} ms",
        ),
        harness.check(
            "writes accepted again after the recovery",
            outage.timeline.get("all 200", -1) >= 0 and all(after_recovery[name] > 0 for name in urls),
            f"{dict(after_recovery)} 2xx after every /health was 200 again",
        ),
        harness.check(
            "no accepted write lost",
            not (lost_users or lost_runs or lost_orders or ledger.mismatches),
            f"{len(ledger.users)} users, {len(ledger.runs)} runs, {len(ledger.orders)} orders accepted; "
            f"missing {len(lost_users)}, {len(lost_runs)}, {len(lost_orders)}; "
            f"order batches miscounted {ledger.mismatches[:2] or 'none'}",
        ),
        harness.check(
            "every accepted run finished",
            outage.timeline.get("drained", 0) >= 0 and not unfinished,
            f"{len(ledger.runs)} runs, not completed: {dict(unfinished) or 'none'}; "
            f"{postponed} worker attempts postponed by the outage",
        ),
    ]
