"""`starling-check`: nox's default sessions (or the ones given), then one honest closing line.

nox ends with its own list of sessions, so the line that says how many tests ran cannot come from a
session: this command runs the sessions, then sums the JUnit XML every suite wrote into one folder and
prints pytest's plain closing line, `N passed, M failed`, as the last line of the whole run. It exits
non-zero when a session failed, when a test failed or errored, or when a suite that ran wrote no report
(a suite that crashed before pytest started must not read as one that passed).

The sessions run three at a time (`--jobs`), each in its own `nox` process whose output is printed whole
when it ends, the longest first so that a short one finishes last; a summary gives each one's wall and
CPU seconds. nox's own `--parallel` runs a session
either beside any other or alone; the tools in `APART` must run beside a suite but never beside each
other, which it cannot say.

    starling-check                    # what the README's test command runs: every default session
    starling-check -s "tests(users)"  # anything else given goes to nox
    starling-check --jobs 1           # the sessions one after another
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from starling_devtools.junit import closing_line, read, report_name
from starling_devtools.matrix import SUITES

# The noxfile writes each suite's report here when this variable is set (see `run_suite`).
JUNIT_DIR_VARIABLE = "STARLING_JUNIT_DIR"

# Sessions that never run beside one another. serve and bench listen on fixed ports (8001-8003 and
# 9092; 191xx); soak, faults and fuzz take free ports but each starts every service and drives it hard,
# and soak and faults judge deadlines and memory growth: beside a suite they were measured to pass, two
# of them on 2 cores would stretch each other. Matched by name; a tool like them belongs here.
APART = frozenset({"serve", "bench", "soak", "faults", "fuzz"})

# Wall seconds of each session run one at a time, warm (`starling-check --jobs 1` at dba285e, other
# work on the machine; tests(servers) from a later run): the longest starts first, so that a short one
# ends the run. Wall, not CPU: tests(core) waits more than it computes (16 CPU s in 50 s). A session not
# listed counts as long.
RECORDED = {
    "tests(testkit)": 106,
    "tests(devtools)": 59,
    "fuzz": 49,
    "tests(core)": 44,
    "faults": 41,
    "tests_postgres(core)": 34,
    "soak": 25,
    "tests_postgres(agents)": 20,
    "tests(agents)": 17,
    "tests_postgres(reporting)": 11,
    "tests_postgres(users)": 10,
    "tests(reporting)": 9,
    "tests_postgres(assessments)": 8,
    "tests(users)": 7,
    "typecheck": 6,
    "tests(servers)": 6,
    "tests(assessments)": 5,
    "shards(testkit)": 4,
    "lint": 0,
}
UNRECORDED = 60
# Three: core's two suites wait on the broker far more than they compute (73 s of wall for 17 s of CPU),
# and a third lane fills those waits. Warm, on a quiet 2-core machine at 0e5035d: 282 s two at a time,
# 233 s three at a time, the same tests passing. (At dba285e, under other sessions' load, three was no
# faster than two.)
JOBS = 3

# nox's options that choose sessions: read to list them, then replaced by `-s <one session>` per process.
SELECTION = (("-s", "-e", "--session", "--sessions"), ("-k", "--keywords"), ("-t", "--tags"))
# Options that make nox do something other than run sessions: given to one nox process as they are.
NOT_A_RUN = frozenset({"-l", "--list", "--list-sessions", "--json", "-h", "--help", "--version", "--usage"})


@dataclass(frozen=True)
class Outcome:
    """One session's nox process: its exit code, its report's entries, and how long it took."""

    session: str
    returncode: int
    seconds: float
    entries: list[dict[str, Any]]
    # CPU seconds of the session's processes, those it waited for included: what two cores can share
    cpu: float = 0.0


def expected_reports(entries: Sequence[dict[str, Any]]) -> list[str]:
    """The report file of every suite session nox ran: passed, failed or aborted (only a skip writes none)."""
    return [
        report_name(entry["signatures"][0] if entry["signatures"] else entry["name"])
        for entry in entries
        if entry["name"] in SUITES and entry["result"] != "skipped"
    ]


def report_entries(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    entries: list[dict[str, Any]] = json.loads(path.read_text())["sessions"]
    return entries


def split_selection(args: Sequence[str]) -> tuple[list[str], list[str]]:
    """nox's arguments as (those that choose sessions, the rest); `--` and what follows stay in the rest."""
    end = args.index("--") if "--" in args else len(args)
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flags in SELECTION:
        parser.add_argument(*flags, nargs="*", action="extend", dest=flags[-1].lstrip("-"))
    known, rest = parser.parse_known_args(list(args[:end]))
    chosen = [
        arg
        for flags in SELECTION
        if (values := getattr(known, flags[-1].lstrip("-"))) is not None
        for arg in (flags[-1], *values)
    ]
    return chosen, [*rest, *args[end:]]


def listed(chosen: Sequence[str]) -> list[str]:
    """The sessions nox would run for these selection arguments, in nox's order."""
    output = subprocess.run(
        [sys.executable, "-m", "nox", "--json", "-l", *chosen], check=True, capture_output=True, text=True
    ).stdout
    return [str(entry["session"]) for entry in json.loads(output)]


def by_recorded_time(sessions: Sequence[str]) -> list[str]:
    return sorted(sessions, key=lambda session: RECORDED.get(session, UNRECORDED), reverse=True)


def is_apart(session: str) -> bool:
    return session.partition("(")[0] in APART


def startable(pending: Sequence[str], running: Sequence[str], jobs: int) -> list[str]:
    """The pending sessions to start now, in order: as many as free slots allow, at most one of `APART`."""
    chosen: list[str] = []
    apart = any(is_apart(session) for session in running)
    for session in pending:
        if len(running) + len(chosen) >= jobs:
            break
        if is_apart(session) and apart:
            continue
        apart = apart or is_apart(session)
        chosen.append(session)
    return chosen


class Runner:
    """Runs sessions, each in its own nox process, `jobs` at a time and never two of `APART` at once."""

    def __init__(self, rest: Sequence[str], scratch: Path, env: dict[str, str], jobs: int) -> None:
        self.rest, self.scratch, self.env, self.jobs = list(rest), scratch, env, jobs
        self.printing = threading.Condition()
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def run_all(self, sessions: Sequence[str]) -> list[Outcome]:
        """Every session's outcome; on Ctrl-C or SIGTERM, those that ran and one that says it stopped."""
        pending = by_recorded_time(sessions)
        outcomes: list[Outcome] = []
        futures: dict[Future[Outcome], str] = {}
        with ThreadPoolExecutor(max_workers=self.jobs) as executor:
            try:
                while pending or futures:
                    for session in startable(pending, list(futures.values()), self.jobs):
                        pending.remove(session)
                        futures[executor.submit(self.run_one, session)] = session
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        del futures[future]
                        outcomes.append(future.result())
            except KeyboardInterrupt:
                self.stop_all()
                outcomes += [future.result() for future in futures]
                outcomes.append(Outcome(f"interrupted ({len(pending)} not started)", 130, 0.0, []))
        return outcomes

    def run_one(self, session: str) -> Outcome:
        stem = Path(report_name(session)).stem
        log, report = self.scratch / f"{stem}.log", self.scratch / f"{stem}.json"
        end = self.rest.index("--") if "--" in self.rest else len(self.rest)
        argv = [sys.executable, "-m", "nox", *self.rest[:end], "-s", session, "--report", str(report)]
        started = time.perf_counter()
        with log.open("wb") as output:
            # A process group of its own, so stopping the run stops the session's services and pytest too.
            process = subprocess.Popen(
                [*argv, *self.rest[end:]],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
            with self.printing:
                self.running[session] = process
            # wait4, not Popen.wait: the same wait, with the CPU time the session used
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        with self.printing:
            del self.running[session]
            self.printing.notify_all()
            sys.stdout.write(log.read_text(errors="replace"))
            sys.stdout.flush()
        cpu = usage.ru_utime + usage.ru_stime
        return Outcome(session, process.returncode, seconds, report_entries(report), cpu)

    def stop_all(self) -> None:
        """SIGTERM to every running session's process group, SIGKILL to what is left after 5 s."""
        with self.printing:
            self.signal_all(signal.SIGTERM)
            if not self.printing.wait_for(lambda: not self.running, timeout=5):
                self.signal_all(signal.SIGKILL)

    def signal_all(self, signum: int) -> None:
        for process in self.running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signum)


@contextlib.contextmanager
def terminated_as_interrupted() -> Iterator[None]:
    """SIGTERM (a cancelled CI job) stops the sessions as Ctrl-C does, instead of orphaning them."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def summary(outcomes: Sequence[Outcome], jobs: int, wall: float) -> str:
    cpu = sum(outcome.cpu for outcome in outcomes)
    lines = [
        f"starling-check: {len(outcomes)} sessions, {jobs} at a time, {wall:.0f} s in all "
        f"({sum(outcome.seconds for outcome in outcomes):.0f} s of sessions, {cpu:.0f} s of CPU):"
    ]
    width = max((len(outcome.session) for outcome in outcomes), default=0)
    for outcome in sorted(outcomes, key=lambda outcome: outcome.seconds, reverse=True):
        results = ", ".join(str(entry["result"]) for entry in outcome.entries) or f"exit {outcome.returncode}"
        lines.append(
            f"  {outcome.session:<{width}}  {outcome.seconds:5.0f} s  {outcome.cpu:5.0f} s CPU  {results}"
        )
    return "\n".join(lines)


def run_sessions(nox_args: Sequence[str], env: dict[str, str], jobs: int, scratch: Path) -> list[Outcome]:
    """Every chosen session in its own nox process; nox as given when it is asked for something else."""
    chosen, rest = split_selection(nox_args)
    head = rest[: rest.index("--")] if "--" in rest else rest
    if not NOT_A_RUN.intersection(head):
        try:
            sessions = listed(chosen)
        except subprocess.CalledProcessError as error:
            sys.stdout.write(error.stderr)
            return [Outcome("nox -l", error.returncode, 0.0, [])]
        started = time.perf_counter()
        with terminated_as_interrupted():
            outcomes = Runner(rest, scratch, env, jobs).run_all(sessions)
        print(summary(outcomes, jobs, time.perf_counter() - started))
        return outcomes
    report = scratch / "nox.json"
    started = time.perf_counter()
    returncode = subprocess.call([sys.executable, "-m", "nox", "--report", str(report), *nox_args], env=env)
    return [Outcome("nox", returncode, time.perf_counter() - started, report_entries(report))]


def main(argv: list[str] | None = None) -> int:
    # nox's own `--report` is honoured (the bench reads session durations from it) and read here too
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--report", type=Path)
    parser.add_argument("--jobs", type=int, default=JOBS)
    known, nox_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    folder = Path(os.environ.get(JUNIT_DIR_VARIABLE) or Path.cwd() / ".junit").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.xml"):
        stale.unlink()
    # nox and the noxfile's imports are compiled once, not by every nox process (the noxfile lets its
    # sessions write bytecode for the same reason)
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env[JUNIT_DIR_VARIABLE] = str(folder)
    with tempfile.TemporaryDirectory(prefix="starling-check-") as scratch:
        outcomes = run_sessions(nox_args, env, max(1, known.jobs), Path(scratch))
    entries = [entry for outcome in outcomes for entry in outcome.entries]
    if known.report:  # nox's format, every session's entry in one file
        passed = int(not any(outcome.returncode for outcome in outcomes))
        known.report.write_text(json.dumps({"result": passed, "sessions": entries}, indent=2))
    sys.stderr.flush()
    missing = [name for name in expected_reports(entries) if not (folder / name).is_file()]
    rows = [read(path) for path in sorted(folder.glob("*.xml"))]
    for name in missing:
        print(f"no JUnit report: {folder / name} (the suite stopped before pytest wrote it)")
    failed_sessions = [outcome.session for outcome in outcomes if outcome.returncode]
    if failed_sessions:
        print(f"failed: {', '.join(failed_sessions)} (their output is above)")
    print(closing_line(rows), flush=True)
    failed = sum(row.failed for row in rows)
    return 1 if failed_sessions or failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
