"""`python -m starling_devtools.soak`: the workspace's services under a bounded load, then the books checked.

Every service of the workspace runs (the harness finds them), beside a broker so that the users
service's events reach the others. The callers (`callers`) load users, agents and reporting with
their own workload and every other service with the generic one, while an administrator
revokes three users' tokens (`revocation`). Afterwards the background runs are waited for, the
services stopped and their databases read directly (`verification`): each accepted write must be
there exactly once, and nothing else. Nothing may answer 5xx or go unanswered, every ingest answer
must count exactly the orders that were new, no service's memory may grow past the stated bound
between the end of the warm-up and the end of the load (`memory`), no service's log may hold a
password, a password hash, a token the run was given or a traceback, and no revoked token may work
later than `--revocation-bound` seconds after its revocation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from starling_devtools import harness
from starling_devtools.harness import logs
from starling_devtools.soak import verification
from starling_devtools.soak.callers import PASSWORD, Callers, callers_for
from starling_devtools.soak.memory import MemoryBound, MemorySampler
from starling_devtools.soak.revocation import Revocations


@dataclass(frozen=True)
class Options:
    # Short in the README's test command; the nightly workflow runs 600 s.
    seconds: float = harness.option(20.0, "how long the load lasts")
    callers: int = harness.option(50, "concurrent callers")
    seed: int = harness.option(1, "the callers' random seed")
    drain_timeout: float = harness.option(120.0, "seconds background runs get to finish")
    memory_mib: float = harness.option(64.0, "growth always allowed, MiB")
    memory_fraction: float = harness.option(0.25, "or this fraction of the warm RSS")
    revocation_bound: float = harness.option(
        5.0, "seconds a revoked token may still work on a service but users"
    )
    warmup: float = 10.0
    db: str = "sqlite"
    keep: bool = False
    root: Path = harness.ROOT

    @property
    def bound(self) -> MemoryBound:
        return MemoryBound(self.memory_mib, self.memory_fraction)


@dataclass
class Outcome:
    """What the load left: the callers' books, memory, the revocations, and the state read afterwards."""

    callers: Callers
    sampler: MemorySampler
    revocations: Revocations | None
    drained: bool = True
    top: dict[str, int] = field(default_factory=dict)
    elapsed: float = 0.0


async def drive(options: Options, stack: harness.Stack) -> Outcome:
    """The load, the revocations in it, then the wait for background runs; memory marked on the way."""
    urls = stack.urls
    sampler = MemorySampler(dict(stack.running))
    async with (
        harness.http_client(connections=16, seconds=30.0) as client,
        harness.http_clients(options.callers, connections=2, seconds=30.0) as own,
    ):
        callers = callers_for(stack, client, own=own)
        token = callers.admin_token
        revocations = (
            Revocations(client, urls, token, PASSWORD, secrets=callers.secrets) if "users" in urls else None
        )
        done = asyncio.Event()
        background = [asyncio.create_task(sampler.run(), name="soak-memory")]
        if revocations is not None:
            await revocations.prepare()
            callers.ledger.registered |= {victim.email for victim in revocations.victims}
            background.append(asyncio.create_task(revocations.watch(done), name="soak-revocations"))
        started = time.monotonic()
        deadline = started + options.seconds
        tasks = [
            asyncio.create_task(callers.caller(index, options.seed, deadline), name=f"soak-caller-{index}")
            for index in range(options.callers)
        ]
        await asyncio.sleep(min(options.warmup, options.seconds / 3))
        sampler.mark("warm")
        await asyncio.sleep(max(0.0, started + options.seconds / 3 - time.monotonic()))
        if revocations is not None:
            await revocations.revoke()
            callers.ledger.deleted.add(revocations.victims[1].email)
        await asyncio.gather(*tasks)
        sampler.mark("end")
        outcome = Outcome(callers, sampler, revocations, elapsed=time.monotonic() - started)
        if callers.writing:
            outcome.drained = await harness.wait_for(
                lambda: verification.runs_drained(client, urls["agents"], token),
                within=options.drain_timeout,
                interval=0.25,
            )
            outcome.top = await verification.top_products(client, urls["reporting"], token)
        if revocations is not None:
            last = max(victim.revoked_at for victim in revocations.victims)
            await asyncio.sleep(max(0.0, last + options.revocation_bound + 1.0 - time.time()))
            done.set()
            await revocations.afterwards()
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        return outcome


def run(options: Options) -> int:
    with harness.work_dir("starling-soak-", keep=options.keep) as directory:
        with harness.run(directory, root=options.root, db=options.db, broker=True) as stack:
            outcome = asyncio.run(drive(options, stack))
            stack.stop()  # the databases are read with the services gone, a PostgreSQL cluster still up
            ledger, admin = outcome.callers.ledger, stack.environment.admin.email
            stored = []
            if outcome.callers.writing:
                stored = asyncio.run(verification.stored(ledger, stack.databases.urls, admin, outcome.top))
        checks = verification.answers(outcome.callers.recorder, ledger)
        if outcome.callers.writing:
            checks.append(
                harness.check(
                    "background runs all finished",
                    outcome.drained,
                    f"{len(ledger.background_runs)} queued; none left queued or running"
                    if outcome.drained
                    else f"still unfinished after {options.drain_timeout:.0f} s",
                )
            )
        checks += [logs.tracebacks_check(stack.logs), logs.secrets_check(stack.logs, outcome.callers.secrets)]
        checks += outcome.sampler.checks(options.bound, warm="warm", end="end")
        if outcome.revocations is not None:
            checks += outcome.revocations.checks(options.revocation_bound)
        checks += stored
        print(render(options, outcome, checks))
        return harness.exit_code(checks)


def render(options: Options, outcome: Outcome, checks: Sequence[harness.Check]) -> str:
    elapsed = outcome.elapsed or options.seconds
    recorder = outcome.callers.recorder
    notes = [
        f"{options.callers} callers for {elapsed:.1f} s on {options.db} (seed {options.seed}); "
        f"{recorder.total} requests, {recorder.total / elapsed:.0f}/s; "
        f"warm-up {options.warmup:.0f} s; memory bound: {options.bound.describe()}",
        "Argon2id at time_cost=1, memory_cost=8 MiB, parallelism=1 (hashing is not what is soaked)",
        *recorder.table(),
        *(f"  sample: {text}" for text in recorder.samples),
    ]
    return harness.render("soak", checks, notes)


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = harness.command_line("soak", __doc__.splitlines()[0], Options)
    parser.add_argument(
        "--warmup", type=float, help="seconds before the first memory sample (1/6 of the run, <= 10)"
    )
    parser.add_argument("--db", choices=harness.KINDS, default="sqlite")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.callers < 1:
        parser.error("--seconds must be positive and --callers at least 1")
    if args.warmup is None:
        args.warmup = min(10.0, args.seconds / 6)
    return Options(**vars(args))


def main(argv: Sequence[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
