"""Figure 1: the kit's isolated-database cost per test, over the no-op floor, against the textbook recipe
and pytest-django (the peer, run in an environment of its own: `peers.py`); and whole processes.

Each configuration is a generated project run by pytest in a subprocess (see `projects`) and timed by
its conftest's stopwatch, from the end of collection to the last teardown. Runs alternate, and a
configuration's cost per test is the median of its differences with the floor run of the same round.
Under `-n 2` that cost is elapsed time per test with two workers sharing the machine's two cores (and,
on PostgreSQL, the server's processes).

Whole processes are what a developer waits for: interpreter start-up, imports, collection and the
tests, seen from outside (`wall`). The kit's project runs in the users service's own test environment,
pytest-django's in one with Django, pytest-django and psycopg; 500 tests, and one (a developer's loop:
run the test being written).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from starling_devtools.bench import projects, testprofile
from starling_devtools.bench.projects import DJANGO, FLOOR, KIT, TEXTBOOK, PytestRun
from starling_devtools.bench.results import (
    LABELS,
    Figure,
    alternating,
    at_most,
    median,
    overhead_per_test,
    ratio,
    times_ahead,
)

PART = "isolation"
WHOLE = "whole process"
# At most this many ms a test over the floor, on both databases, serial and -n 2, 500 and 2,000 tests
# (issue 15), and at least this many times cheaper than the textbook recipe in the same configuration.
TARGET_MS = 1.5
AHEAD_TARGET = 2.0
GROWTH_TARGET = 1.1
DATABASE_URL_ENV = "STARLING_TEST_DATABASE_URL"
KINDS = {FLOOR: "no-op floor", KIT: "kit", TEXTBOOK: "textbook recipe", DJANGO: "pytest-django"}


@dataclass(frozen=True)
class Config:
    kind: str
    database: str | None  # None for the floor
    workers: int  # 1: serial; 2: -n 2
    tests: int

    @property
    def key(self) -> str:
        return f"{self.kind}-{self.database or 'none'}-{self.mode}-{self.tests}"

    @property
    def mode(self) -> str:
        return "serial" if self.workers == 1 else f"-n {self.workers}"

    @property
    def label(self) -> str:
        where = f" on {LABELS[self.database]}" if self.database else ""
        return f"{KINDS[self.kind]}{where}, {self.mode}, {self.tests:,} tests"

    def like(self, kind: str, workers: int | None = None) -> Config:
        """The configuration of `kind` run the same way (`workers` apart); the floor has no database."""
        database = None if kind == FLOOR else self.database
        return Config(kind, database, self.workers if workers is None else workers, self.tests)

    def pytest_args(self) -> list[str]:
        args = ["-n", str(self.workers)] if self.workers > 1 else []
        if self.kind == KIT:
            return [*args, "--db", self.database or "sqlite"]
        # The floor and the recipe are what a suite looks like without the kit; pytest-django runs in
        # an environment without it.
        return args if self.kind == DJANGO else [*args, "-p", "no:starling"]

    def env(self, server_url: str | None) -> dict[str, str | None]:
        if self.database != "postgres":
            return {DATABASE_URL_ENV: None}
        if server_url is None:
            raise ValueError(f"{self.label} needs a PostgreSQL server")
        return {DATABASE_URL_ENV: server_url}


Runs = dict[str, list[PytestRun]]


def plan(tests: int, *, growth: int, databases: Sequence[str], peer: bool) -> list[Config]:
    """The floor, the kit and the recipe per database, serial and -n 2, at `tests` and `growth` tests
    (0: none); with `peer`, pytest-django serially per database."""
    configs: list[Config] = []
    for count in (tests, growth) if growth else (tests,):
        for workers in (1, 2):
            configs.append(Config(FLOOR, None, workers, count))
            for database in databases:
                configs += [Config(KIT, database, workers, count), Config(TEXTBOOK, database, workers, count)]
    return configs + [Config(DJANGO, database, 1, tests) for database in databases if peer]


def measure(
    configs: Sequence[Config],
    root: Path,
    *,
    repeat: int,
    server_url: str | None,
    pythons: dict[str, str],
    log: Callable[[str], None],
) -> Runs:
    """Run every configuration `repeat` times, alternating, after one unmeasured run of each project (the
    first import of everything an environment loads writes bytecode caches); `pythons` names the
    interpreter of a kind that runs in an environment of its own."""
    directories = {
        (kind, tests): projects.generate(kind, root / f"{kind}-{tests}", tests)
        for kind, tests in dict.fromkeys((config.kind, config.tests) for config in configs)
    }

    def run(config: Config) -> PytestRun:
        directory, python = directories[(config.kind, config.tests)], pythons.get(config.kind, sys.executable)
        args, env = config.pytest_args(), config.env(server_url)
        return projects.run(directory, args, expect=config.tests, env=env, python=python)

    for kind, tests in directories:
        run(next(config for config in configs if (config.kind, config.tests) == (kind, tests)))
    runs: Runs = {config.key: [] for config in configs}
    for number, config in alternating(configs, repeat):
        measured = run(config)
        runs[config.key].append(measured)
        log(f"{root.name} {number + 1}/{repeat}: {config.label}: tests {measured.tests:.2f} s, "
            f"pytest {measured.pytest:.2f} s, wall {measured.wall:.2f} s")  # fmt: skip
    return runs


def seconds(runs: Sequence[PytestRun], timer: str = "tests") -> list[float]:
    return [getattr(run, timer) for run in runs]


def overhead_ms(config: Config, runs: Runs) -> float:
    floor = seconds(runs[config.like(FLOOR).key])
    return 1000 * overhead_per_test(seconds(runs[config.key]), floor, config.tests)


def _times(runs: Sequence[PytestRun]) -> str:
    return ", ".join(f"{timer} {median(seconds(runs, timer)):.2f} s" for timer in ("tests", "pytest", "wall"))


def figures(configs: Sequence[Config], runs: Runs) -> list[Figure]:
    """Floor rows; a row per kit configuration against its reference, and one more: how many times
    cheaper than the recipe in the same configuration; pytest-django's rows; then growth."""
    tests = configs[0].tests
    found: list[Figure] = []
    for config in configs:
        size = "" if config.tests == tests else f", {config.tests:,} tests"
        where = f"{KINDS[config.kind]} on {LABELS[config.database or 'sqlite']}, {config.mode}{size}"
        times = _times(runs[config.key])
        if config.kind == FLOOR and not size:
            name = f"floor: {config.tests:,} no-op async tests, {config.mode} (reference)"
            found.append(Figure(PART, name, median(seconds(runs[config.key])), "s", detail=times))
        elif config.kind == KIT:
            # Serial: the recipe. Under xdist: the kit serial, so the ratio is what the workers bought.
            reference = config.like(TEXTBOOK) if config.workers == 1 else config.like(KIT, workers=1)
            value, recipe = overhead_ms(config, runs), overhead_ms(config.like(TEXTBOOK), runs)
            found += [
                Figure(PART, f"{where}: cost per test over the floor", value, "ms/test",
                       f"{KINDS[reference.kind]}, {reference.mode}", overhead_ms(reference, runs),
                       at_most(value, TARGET_MS, " ms/test"), detail=times),
                times_ahead(PART, f"{where}: times cheaper than the textbook recipe", ratio(recipe, value),
                            f"textbook recipe: {recipe:.2f} ms/test", AHEAD_TARGET),
            ]  # fmt: skip
        elif config.kind == DJANGO:
            name = f"{where}: cost per test over the floor (peer)"
            kit = overhead_ms(config.like(KIT), runs)
            found.append(
                Figure(PART, name, overhead_ms(config, runs), "ms/test", "kit, serial", kit, detail=times)
            )
    return found + growth_figures(configs, runs)


def growth_figures(configs: Sequence[Config], runs: Runs) -> list[Figure]:
    """The per-test cost at the larger size over the smaller's: 1.0 is linear."""
    small = configs[0].tests
    found: list[Figure] = []
    for large in (config for config in configs if config.tests != small and config.kind in (FLOOR, KIT)):
        base = Config(large.kind, large.database, large.workers, small)
        if large.kind == FLOOR:
            cost_small = median(seconds(runs[base.key])) / small * 1000
            cost_large = median(seconds(runs[large.key])) / large.tests * 1000
            what = "floor: time per test"
        else:
            cost_small, cost_large = overhead_ms(base, runs), overhead_ms(large, runs)
            what = f"kit on {LABELS[large.database or 'sqlite']}: cost per test over the floor"
        value = ratio(cost_large, cost_small)
        name = f"growth, {what}, {large.tests:,} over {small:,} tests, {large.mode}"
        detail = f"{cost_large:.3f} ms/test at {large.tests:,}, {cost_small:.3f} at {small:,}"
        found.append(Figure(PART, name, value, "x", target=at_most(value, GROWTH_TARGET, "x"), detail=detail))
    return found


def whole_plan(tests: int, databases: Sequence[str]) -> list[Config]:
    """The kit's and pytest-django's projects, serial, at `tests` tests and at one, per database."""
    sizes = (tests, 1)
    return [Config(kind, db, 1, size) for size in sizes for db in databases for kind in (KIT, DJANGO)]


def whole_figures(configs: Sequence[Config], runs: Runs) -> list[Figure]:
    found: list[Figure] = []
    for config in (config for config in configs if config.kind == KIT):
        kit = median(seconds(runs[config.key], "wall"))
        peer = median(seconds(runs[config.like(DJANGO).key], "wall"))
        what = (
            f"{config.tests:,} test{'s' if config.tests > 1 else ''} on {LABELS[config.database or 'sqlite']}"
        )
        if config.tests > 1:
            name = f"{what}: pytest-django's whole run over the kit's (users' test environment)"
            costs = f"kit {kit:.2f} s, pytest-django {peer:.2f} s"
            found.append(times_ahead(WHOLE, name, peer / kit, costs, AHEAD_TARGET))
        else:
            name = f"{what}: the kit's whole run (users' test environment) against pytest-django's"
            target = at_most(kit / peer, 1.0, "x of pytest-django's")
            found.append(Figure(WHOLE, name, kit, "s", "pytest-django", peer, target))
    return found


def measurements(runs: Runs) -> dict[str, Any]:
    return {key: [asdict(run) for run in measured] for key, measured in runs.items()}


def profile(
    tests: int, database: str, server_url: str | None, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """One profiled run of the kit's project and of the floor's; the table goes to stderr."""
    found: dict[str, Any] = {}
    for config in (Config(KIT, database, 1, tests), Config(FLOOR, None, 1, tests)):
        directory = projects.generate(config.kind, workdir / f"profile-{config.kind}-{database}", tests)
        out = directory / "profile.json"
        args = [*config.pytest_args(), "-p", "starling_devtools.bench.testprofile"]
        env = {**config.env(server_url), testprofile.OUT_ENV: str(out)}
        projects.run(directory, args, expect=tests, env=env)
        found[config.kind] = json.loads(out.read_text())
    log("\n" + testprofile.table(found[KIT], found[FLOOR], f"where an isolated test's time goes, {database}"))
    return found
