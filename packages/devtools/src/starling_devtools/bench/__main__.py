"""`python -m starling_devtools.bench` (what `nox -s bench` runs): measure, print the table, save JSON.

    nox -s bench                                  # isolation, requests, serving: under 10 min on 2 cores
    nox -s bench -- --only isolation --tests 50   # a quick pass over one part
    nox -s bench -- --readme                      # also time the README's test command (about 5-8 min)
    nox -s bench -- --only isolation --profile    # and where one isolated test's time goes
    nox -s bench -- --only events --events 1000   # events through outbox, broker and inbox, and raw aiokafka

Parts: isolation, requests, serving, profile, events, readme (opt-in). Progress goes to stderr, the
table to stdout, and everything measured, raw runs included, to `.bench/results.json` (`--json PATH`).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starling_devtools.bench import (
    inprocess,
    isolation,
    peers,
    profile,
    projects,
    readme,
    servers,
    serving,
    whole,
    wrk,
)
from starling_devtools.bench.results import Figure, Report, summary, table

PARTS = ("isolation", "requests", "serving", "profile", "events", "readme")
DEFAULT_PARTS = ("isolation", "requests", "serving", "profile", "events")
DATABASES = ("sqlite", "postgres")
SERVICES = tuple(workload.service for workload in serving.WORKLOADS)


@dataclass(frozen=True)
class Options:
    parts: tuple[str, ...]
    json: Path
    tests: int
    growth: int
    repeat: int
    databases: tuple[str, ...]
    rounds: int
    batch: int
    duration: float
    serving_databases: tuple[str, ...]
    keep: bool
    profile: bool = False
    peers: bool = True
    serving_rounds: int = 2
    servers: tuple[str, ...] = serving.DEFAULT_SERVERS
    services: tuple[str, ...] = SERVICES
    writes: bool = True
    reads: bool = True
    profile_seconds: float = 8.0
    events: int = 5000


def _choices(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> tuple[str, ...]:
        chosen = tuple(item.strip() for item in text.split(",") if item.strip())
        unknown = [item for item in chosen if item not in allowed]
        if unknown or not chosen:
            raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(allowed)}")
        return chosen

    return parse


def _at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m starling_devtools.bench",
        description="Starling's speed, each figure a ratio against a reference measured in the same run.",
    )
    parser.add_argument("--only", type=_choices(PARTS), help=f"parts to run, from {','.join(PARTS)}")
    parser.add_argument("--readme", action="store_true", help="also time the README's test command (~3 min)")
    parser.add_argument("--json", type=Path, default=Path(".bench/results.json"), help="default: %(default)s")
    parser.add_argument("--tests", type=_at_least(1), default=500, help="tests per isolation run (500)")
    parser.add_argument(
        "--growth", type=_at_least(0), default=2000, help="the larger run for growth; 0: none"
    )
    parser.add_argument("--repeat", type=_at_least(1), default=3, help="runs of each isolation configuration")
    parser.add_argument("--databases", type=_choices(DATABASES), default=DATABASES,
                        help="databases for isolation and requests (sqlite,postgres)")  # fmt: skip
    parser.add_argument("--rounds", type=_at_least(1), default=9, help="request rounds, alternating (9)")
    parser.add_argument("--batch", type=_at_least(1), default=200, help="requests per round (200)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of each wrk run (5)")
    parser.add_argument("--serving-databases", type=_choices(DATABASES), default=DATABASES,
                        help="databases to serve on (sqlite,postgres: about 5 min each)")  # fmt: skip
    parser.add_argument("--serving-rounds", type=_at_least(1), default=2,
                        help="alternating rounds of every serving run; figures are medians (2)")  # fmt: skip
    parser.add_argument("--servers", type=_choices(tuple(servers.ALL)), default=serving.DEFAULT_SERVERS,
                        help="servers of several processes, each against serve with one "
                             f"({','.join(serving.DEFAULT_SERVERS)}; of {','.join(servers.ALL)})",
                        )  # fmt: skip
    parser.add_argument("--services", type=_choices(SERVICES), default=SERVICES,
                        help=f"services to serve ({','.join(SERVICES)})")  # fmt: skip
    parser.add_argument("--no-writes", dest="writes", action="store_false", help="serve the read paths only")
    parser.add_argument("--no-reads", dest="reads", action="store_false", help="serve the write paths only")
    parser.add_argument("--events", type=_at_least(1), default=5000,
                        help="events per throughput round of the events part (5000)")  # fmt: skip
    parser.add_argument("--profile-seconds", type=float, default=8.0,
                        help="seconds py-spy samples each profiled process (8)")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the generated projects and databases")
    parser.add_argument("--profile", action="store_true",
                        help="with the isolation part: where one isolated test's time goes")  # fmt: skip
    parser.add_argument("--no-peers", dest="peers", action="store_false",
                        help="without pytest-django and the whole-process runs")  # fmt: skip
    args = parser.parse_args(argv)
    if args.growth and args.growth <= args.tests:
        parser.error(f"--growth ({args.growth}) must be larger than --tests ({args.tests}), or 0")
    if args.duration <= 0:
        parser.error("--duration must be positive")
    values = vars(args)
    parts = values.pop("only") or DEFAULT_PARTS
    if values.pop("readme"):
        parts = (*parts, "readme")
    return Options(
        **values
        | {
            "parts": tuple(part for part in PARTS if part in parts),
            "servers": tuple(key for key in args.servers if key != servers.ONE.key),
        }
    )


def needs_postgres(options: Options) -> bool:
    uses_databases = {"isolation", "requests", "events"} & set(options.parts)
    return bool(uses_databases and "postgres" in options.databases) or (
        bool({"serving", "profile"} & set(options.parts)) and "postgres" in options.serving_databases
    )


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def meta(options: Options) -> dict[str, Any]:
    commit = ""
    with contextlib.suppress(OSError):
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
    return {
        "started": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": commit or None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "options": {
            name: str(value) if isinstance(value, Path) else value for name, value in vars(options).items()
        },
    }


def start_postgres(options: Options, report: Report, stack: contextlib.ExitStack) -> str | None:
    """The bench's one PostgreSQL cluster, or None (with a note) when it is not needed or cannot start."""
    if not needs_postgres(options):
        return None
    # Imported here: the kit's cluster code pulls in SQLAlchemy and asyncpg, which the rest of the
    # bench, and its unit tests, do without.
    from starling_devtools.bench import cluster
    from starling_servers.postgres import PostgresUnavailable

    try:
        url = stack.enter_context(cluster.cluster())
    except PostgresUnavailable as exc:
        report.add(Figure("postgres", "PostgreSQL cluster", None, "", note=f"unavailable, skipped: {exc}"))
        return None
    log(f"bench: PostgreSQL at {url}")
    return url


def run_isolation(options: Options, report: Report, workdir: Path, server_url: str | None) -> None:
    databases = [db for db in options.databases if db == "sqlite" or server_url]
    pythons = _peer_environments(options, report, workdir) if options.peers else {}
    # The kit's isolation runs share the floor's and the recipe's environment; only the peer has its own.
    peer_python = {kind: python for kind, python in pythons.items() if kind == projects.DJANGO}
    configs = isolation.plan(
        options.tests,
        growth_tests=options.growth or None,
        databases=databases,
        everywhere=True,
        peer=projects.DJANGO in pythons,
    )
    directories = isolation.prepare(configs, workdir / "isolation")
    runs = isolation.measure(
        configs, directories, repeat=options.repeat, server_url=server_url, log=log, pythons=peer_python
    )
    targets = {"target_ms": isolation.TARGET_MS, "ahead": isolation.AHEAD_TARGET}
    report.add(*isolation.figures(configs, runs, **targets))
    report.measurements["isolation"] = isolation.measurements(configs, runs)
    if pythons:
        walls = whole.measure(
            workdir / "whole",
            databases,
            pythons=pythons,
            server_url=server_url,
            repeat=options.repeat + 2,
            sizes=(options.tests, 1),
            log=log,
        )
        report.add(*whole.figures(walls))
        report.measurements["whole_process"] = whole.measurements(walls)
    if options.profile:
        kit, floor = directories[(projects.KIT, options.tests)], directories[(projects.FLOOR, options.tests)]
        report.measurements["profile"] = {
            database: isolation.profile(kit, floor, database, server_url, workdir, log)
            for database in databases
        }


def _peer_environments(options: Options, report: Report, workdir: Path) -> dict[str, str]:
    """pytest-django's environment (kept under .bench/venvs) and the users service's own test one."""
    try:
        django = peers.django_environment(options.json.parent / "venvs" / "pytest-django")
        service = peers.service_environment(repository_root(), workdir / "venv-users")
    except peers.PeerUnavailable as exc:
        note = f"unavailable: {exc}"
        report.add(Figure(isolation.PART, "pytest-django and whole processes", None, "", note=note))
        return {}
    return {projects.DJANGO: django, projects.KIT: service}


def run_requests(options: Options, report: Report, workdir: Path, server_url: str | None) -> None:
    measured = {
        database: inprocess.measure(
            workdir / f"requests-{database}",
            database,
            server_url=server_url,
            rounds=options.rounds,
            batch=options.batch,
        )
        for database in options.databases
        if database == "sqlite" or server_url
    }
    report.add(*inprocess.figures(measured))
    report.measurements["requests"] = measured


def run_serving(options: Options, report: Report, workdir: Path, server_url: str | None) -> None:
    try:
        wrk.executable()
    except wrk.WrkUnavailable as exc:
        report.add(Figure(serving.PART, "services under wrk", None, "", note=str(exc)))
        return
    measured: list[serving.Measured] = []
    plan = serving.Plan(
        rounds=options.serving_rounds,
        servers=options.servers,
        writes=options.writes,
        reads=options.reads,
        workloads=_workloads(options),
        duration=options.duration,
    )
    for database, env_for in _serving_databases(options, workdir, server_url):
        measured += serving.measure(database, env_for, plan=plan, workdir=workdir / "wrk", log=log)
    report.add(*serving.figures(measured))
    report.measurements["serving"] = serving.measurements(measured)


def run_profile(options: Options, report: Report, workdir: Path, server_url: str | None) -> None:
    try:
        wrk.executable()
        profile.py_spy()
    except (wrk.WrkUnavailable, RuntimeError) as exc:
        report.add(Figure(profile.PART, "profile under wrk", None, "", note=str(exc)))
        return
    found: list[profile.Profiled] = []
    for database, env_for in _serving_databases(options, workdir / "profile", server_url):
        found += profile.measure(
            database, env_for, seconds=options.profile_seconds, out_dir=options.json.parent,
            workloads=_workloads(options), log=log,
        )  # fmt: skip
    report.add(*profile.figures(found))
    report.measurements["profile"] = profile.measurements(found)


def _workloads(options: Options) -> list[serving.Workload]:
    return [workload for workload in serving.WORKLOADS if workload.service in options.services]


def _serving_databases(
    options: Options, workdir: Path, server_url: str | None
) -> list[tuple[str, Callable[[str], dict[str, str]]]]:
    """Each database to serve on that this run has, with how a service finds its own database there."""
    chosen = [db for db in options.serving_databases if db == "sqlite" or server_url]
    return [(database, _database_env(database, workdir, server_url)) for database in chosen]


def _database_env(database: str, workdir: Path, server_url: str | None) -> Callable[[str], dict[str, str]]:
    """How service `name` finds its own database: a SQLite file, or a fresh PostgreSQL database."""
    if database == "sqlite":
        return lambda name: {
            f"STARLING_{name.upper()}_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/serving-sqlite/{name}.db"
        }
    assert server_url is not None
    from starling_devtools.bench.cluster import create_database

    return lambda name: {
        f"STARLING_{name.upper()}_DATABASE_URL": create_database(server_url, f"bench_{name}")
    }


def run_readme(options: Options, report: Report, workdir: Path, server_url: str | None) -> None:
    output = options.json.parent / "readme-nox.log"
    log(f"bench: the README's test command runs now (about 5-8 min); its output goes to {output}")
    measured = readme.run(repository_root(), output)
    report.add(*readme.figures(measured))
    report.measurements["readme"] = {
        "seconds": measured.seconds,
        "returncode": measured.returncode,
        "warm": measured.warm,
        "sessions": [vars(session) for session in measured.sessions],
    }


def repository_root(start: Path | None = None) -> Path:
    """The checkout holding the noxfile: nox runs the bench from there, a developer maybe from below."""
    here = (start or Path.cwd()).resolve()
    return next((path for path in (here, *here.parents) if (path / "noxfile.py").is_file()), here)


def run_events(options: Options, report: Report, workdir: Path, server_url: str | None) -> None:
    # Imported here, as the cluster is: the events port and aiokafka, which the other parts do without.
    from starling_devtools.bench import events

    measured = {
        database: events.measure(
            database,
            events.sqlite_url(workdir / "events") if database == "sqlite" else _events_database(server_url),
            count=options.events,
            log=log,
        )
        for database in options.databases
        if database == "sqlite" or server_url
    }
    report.add(*events.figures(measured))
    report.measurements["events"] = events.measurements(measured)


def _events_database(server_url: str | None) -> str:
    from starling_devtools.bench.cluster import create_database

    assert server_url is not None
    return create_database(server_url, "bench_events")


RUNNERS = {
    "isolation": run_isolation,
    "requests": run_requests,
    "serving": run_serving,
    "profile": run_profile,
    "events": run_events,
    "readme": run_readme,
}


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    report = Report(meta=meta(options))
    failed: list[str] = []
    workdir = Path(tempfile.mkdtemp(prefix="starling-bench-"))
    try:
        with contextlib.ExitStack() as stack:
            server_url = start_postgres(options, report, stack)
            for part in options.parts:
                log(f"bench: {part}")
                try:
                    RUNNERS[part](options, report, workdir, server_url)
                except Exception as exc:  # one part failing must not lose the others' figures
                    failed.append(part)
                    log(f"bench: {part} failed:\n{exc}")
                    first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
                    report.add(
                        Figure(part, f"{part}: failed", None, "", note=f"{type(exc).__name__}: {first_line}")
                    )
    finally:
        if options.keep:
            log(f"bench: projects and databases kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if "readme" not in options.parts:
        report.add(*readme.figures(None))
    report.meta["finished"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    counts = report.meta["targets"] = dict(summary(report.figures))
    report.write_json(options.json)
    print(table(report.figures))
    print(f"\ntargets: {counts['met']} met, {counts['missed']} missed, {counts['undecided']} undecided; "
          f"JSON in {options.json}")  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
