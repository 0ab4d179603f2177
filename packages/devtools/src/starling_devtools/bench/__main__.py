"""`python -m starling_devtools.bench` (what `nox -s bench` runs): measure, print the table, save JSON.

    nox -s bench                                  # every part: about 25 min on 2 cores
    nox -s bench -- --only isolation --tests 50   # a quick pass over one part
    nox -s bench -- --only isolation --profile    # and where one isolated test's time goes
    nox -s bench -- --only events --events 1000   # events through outbox, broker and inbox, and raw aiokafka

Parts: isolation, requests, serving, profile, events. Progress goes to stderr, the table to stdout, and
everything measured, raw runs included, to `.bench/results.json` (`--json PATH`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from starling_devtools import harness
from starling_devtools.bench import inprocess, isolation, peers, profile, projects, serving
from starling_devtools.bench.results import Figure, Report, Unavailable, summary, table
from starling_servers import postgres

DATABASES = ("sqlite", "postgres")
SERVICES = tuple(workload.service for workload in serving.WORKLOADS)


def _subset(allowed: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(item.strip() for item in text.split(",") if item.strip())
        if not chosen or any(item not in allowed for item in chosen):
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(allowed)}")
        return chosen

    return parse


def _positive(text: str) -> int:
    if (value := int(text)) < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m starling_devtools.bench",
        description="Starling's speed, each figure a ratio against a reference measured in the same run.",
    )
    add = parser.add_argument
    add("--only", type=_subset(tuple(PARTS)), default=tuple(PARTS), help=f"parts, from {','.join(PARTS)}")
    add("--json", type=Path, default=Path(".bench/results.json"), help="default: %(default)s")
    add(
        "--databases",
        type=_subset(DATABASES),
        default=DATABASES,
        help="databases of every part (%(default)s)",
    )
    add("--tests", type=_positive, default=500, help="tests per isolation run (%(default)s)")
    add("--growth", type=int, default=2000, help="the larger isolation run; 0: none (%(default)s)")
    add("--repeat", type=_positive, default=3, help="runs of each isolation configuration (%(default)s)")
    add("--no-peers", dest="peers", action="store_false", help="without pytest-django and whole processes")
    add("--profile", action="store_true", help="with isolation: where one isolated test's time goes")
    add("--services", type=_subset(SERVICES), default=SERVICES, help="services to serve and profile")
    add("--servers", type=_subset(serving.TWO_PROCESSES), default=serving.TWO_PROCESSES,
        help="servers of two processes, each against serve with one (%(default)s)")  # fmt: skip
    add("--serving-rounds", type=_positive, default=2, help="alternating rounds of every serving run (2)")
    add("--duration", type=float, default=5.0, help="seconds of each wrk run (%(default)s)")
    add("--profile-seconds", type=float, default=8.0, help="seconds py-spy samples each process (8)")
    add("--events", type=_positive, default=5000, help="events per throughput round (%(default)s)")
    options = parser.parse_args(argv)
    if options.growth and options.growth <= options.tests:
        parser.error(f"--growth ({options.growth}) must be larger than --tests ({options.tests}), or 0")
    if options.duration <= 0 or options.profile_seconds <= 0:
        parser.error("--duration and --profile-seconds must be positive")
    options.only = tuple(part for part in PARTS if part in options.only)
    return options


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def meta(options: argparse.Namespace) -> dict[str, Any]:
    git = ["git", "rev-parse", "--short", "HEAD"]
    commit = subprocess.run(git, capture_output=True, text=True, check=False, cwd=harness.ROOT).stdout.strip()
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit or None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "options": vars(options),  # the JSON writes a path as its text
    }


class Bench:
    """One run's parts, on the databases it has: SQLite always, PostgreSQL on the bench's one cluster
    (every PostgreSQL figure runs on it, so they differ only by what is measured, never by the server)."""

    def __init__(
        self, options: argparse.Namespace, report: Report, workdir: Path, server: str | None
    ) -> None:
        self.options, self.report, self.workdir, self.server_url = options, report, workdir, server
        self.databases = [db for db in options.databases if db == "sqlite" or server]
        self.workloads = [work for work in serving.WORKLOADS if work.service in options.services]

    def record(self, part: str, figures: Sequence[Figure], measurements: Any) -> None:
        self.report.add(*figures)
        self.report.measurements[part] = measurements

    def database_url(self, database: str, name: str) -> str:
        """A fresh database `name` for a part: a SQLite file under the run's directory, or on the cluster."""
        if database == "sqlite":
            return f"sqlite+aiosqlite:///{self.workdir / database}-{name}.db"
        from starling_devtools.bench.cluster import create_database

        assert self.server_url is not None
        return create_database(self.server_url, f"bench_{name}")

    def service_database(self, database: str, part: str) -> serving.EnvFor:
        """How service `name` finds its own database: a SQLite file, or a fresh PostgreSQL database."""
        return lambda name: {
            f"STARLING_{name.upper()}_DATABASE_URL": self.database_url(database, f"{part}_{name}")
        }

    def measure_isolation(self) -> None:
        options, server_url = self.options, self.server_url
        pythons = self.peer_environments() if options.peers else {}
        configs = isolation.plan(
            options.tests, growth=options.growth, databases=self.databases, peer=bool(pythons)
        )
        # The kit's runs share the floor's and the recipe's environment; only the peer has its own.
        peer = {projects.DJANGO: pythons[projects.DJANGO]} if pythons else {}
        runs = isolation.measure(
            configs,
            self.workdir / "isolation",
            repeat=options.repeat,
            server_url=server_url,
            pythons=peer,
            log=log,
        )
        self.record("isolation", isolation.figures(configs, runs), isolation.measurements(runs))
        if pythons:
            configs = isolation.whole_plan(options.tests, self.databases)
            runs = isolation.measure(
                configs,
                self.workdir / "whole",
                repeat=options.repeat + 2,
                server_url=server_url,
                pythons=pythons,
                log=log,
            )
            self.record("whole_process", isolation.whole_figures(configs, runs), isolation.measurements(runs))
        if options.profile:
            self.report.measurements["isolated_test_profile"] = {
                database: isolation.profile(options.tests, database, self.server_url, self.workdir, log)
                for database in self.databases
            }

    def peer_environments(self) -> dict[str, str]:
        """pytest-django's environment (kept under .bench/venvs) and the users service's own test one."""
        try:
            django = peers.django_environment(self.options.json.parent / "venvs" / "pytest-django")
            return {
                projects.DJANGO: django,
                projects.KIT: peers.service_environment(self.workdir / "venv-users"),
            }
        except peers.PeerUnavailable as exc:
            note = f"unavailable, skipped: {exc}"
            self.report.add(Figure(isolation.PART, "pytest-django and whole processes", None, "", note=note))
            return {}

    def measure_requests(self) -> None:
        measured = {
            database: inprocess.measure(
                self.workdir / f"requests-{database}", database, server_url=self.server_url
            )
            for database in self.databases
        }
        self.record("requests", inprocess.figures(measured), measured)

    def measure_serving(self) -> None:
        options, measured = self.options, list[serving.Measured]()
        for database in self.databases:
            measured += serving.measure(
                database, self.service_database(database, "serving"), workloads=self.workloads,
                servers=options.servers, rounds=options.serving_rounds, duration=options.duration,
                workdir=self.workdir / "wrk", log=log,
            )  # fmt: skip
        self.record("serving", serving.figures(measured), serving.measurements(measured))

    def measure_profile(self) -> None:
        found: list[profile.Profiled] = []
        for database in self.databases:
            found += profile.measure(
                database, self.service_database(database, "profile"), seconds=self.options.profile_seconds,
                out_dir=self.options.json.parent, workloads=self.workloads, log=log,
            )  # fmt: skip
        self.record("profile", profile.figures(found), profile.measurements(found))

    def measure_events(self) -> None:
        # Imported here, as the cluster is: the events port and aiokafka, which the other parts do without.
        from starling_devtools.bench import events

        count = self.options.events
        measured = {
            db: events.measure(db, self.database_url(db, "events"), count=count, log=log)
            for db in self.databases
        }
        self.record("events", events.figures(measured), events.measurements(measured))


PARTS: dict[str, Callable[[Bench], None]] = {
    "isolation": Bench.measure_isolation,
    "requests": Bench.measure_requests,
    "serving": Bench.measure_serving,
    "profile": Bench.measure_profile,
    "events": Bench.measure_events,
}


def start_postgres(
    options: argparse.Namespace, report: Report, workdir: Path, stack: contextlib.ExitStack
) -> str | None:
    """The bench's one PostgreSQL cluster, or None (with a note) when it is not needed or cannot start."""
    if "postgres" not in options.databases:
        return None
    try:
        url = postgres.ensure_cluster(workdir / "postgres").url
    except postgres.PostgresUnavailable as exc:
        report.add(Figure("postgres", "PostgreSQL cluster", None, "", note=f"unavailable, skipped: {exc}"))
        return None
    stack.callback(postgres.stop_cluster, workdir / "postgres")
    log(f"bench: PostgreSQL at {url}")
    return url


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    report = Report(meta=meta(options))
    failed: list[str] = []
    with harness.work_dir("starling-bench-") as workdir, contextlib.ExitStack() as stack:
        bench = Bench(options, report, workdir, start_postgres(options, report, workdir, stack))
        for part in options.only:
            log(f"bench: {part}")
            try:
                PARTS[part](bench)
            except Unavailable as exc:
                report.add(Figure(part, part, None, "", note=f"unavailable, skipped: {exc}"))
            except Exception as exc:  # one part failing must not lose the others' figures
                failed.append(part)
                log(f"bench: {part} failed:\n{exc}")
                first_line = (str(exc).strip().splitlines() or [""])[0][:200]
                report.add(
                    Figure(part, f"{part}: failed", None, "", note=f"{type(exc).__name__}: {first_line}")
                )
    report.meta["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    counts = report.meta["targets"] = summary(report.figures)
    report.write_json(options.json)
    print(table(report.figures))
    print(f"\ntargets: {counts['met']} met, {counts['missed']} missed, {counts['undecided']} undecided; "
          f"JSON in {options.json}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
