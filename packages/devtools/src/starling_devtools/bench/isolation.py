"""Figure 1: the kit's isolated-database cost per test, over the no-op floor, against the textbook recipe.

Each configuration is a generated project run by pytest in a subprocess (see `projects` and
`pytest_runs`) and timed by its conftest's stopwatch, from the end of collection to the last teardown.
Runs alternate: every repetition runs each configuration once, in reverse order every other time, and
a configuration's cost per test is the median of its differences with the floor run of the same
repetition. Under `-n 2` that cost is elapsed time per test with two workers sharing the machine's
two cores (and, on PostgreSQL, the server's processes).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starling_devtools.bench import projects, pytest_runs
from starling_devtools.bench.projects import FLOOR, KIT, TEXTBOOK
from starling_devtools.bench.results import Figure, at_most
from starling_devtools.bench.stats import growth, median, overhead_per_test

PART = "isolation"
TARGET_MS = 3.0
GROWTH_TARGET = 1.1
DATABASE_URL_ENV = "STARLING_TEST_DATABASE_URL"
SQLITE = "sqlite"
POSTGRES = "postgres"
LABELS = {
    FLOOR: "no-op floor",
    KIT: "kit",
    TEXTBOOK: "textbook recipe",
    SQLITE: "SQLite",
    POSTGRES: "PostgreSQL",
}


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
        return f"{LABELS[self.kind]}{where}, {self.mode}, {self.tests:,} tests"

    def floor(self) -> Config:
        return Config(FLOOR, None, self.workers, self.tests)

    def pytest_args(self) -> list[str]:
        args = ["-n", str(self.workers)] if self.workers > 1 else []
        if self.kind == KIT:
            args += ["--db", self.database or SQLITE]
        else:
            # The floor and the recipe are what a suite looks like without the kit.
            args += ["-p", "no:starling"]
        return args

    def env(self, server_url: str | None) -> dict[str, str | None]:
        if self.database == POSTGRES:
            if server_url is None:
                raise ValueError(f"{self.label} needs a PostgreSQL server")
            return {DATABASE_URL_ENV: server_url}
        return {DATABASE_URL_ENV: None}


def plan(
    tests: int, *, growth_tests: int | None, databases: Sequence[str], workers: Sequence[int] = (1, 2)
) -> list[Config]:
    """Every configuration to run: the floor and the kit per database and mode, the recipe serial
    (under xdist it would cost two more slow runs a repetition and compare nothing new), then the
    growth pair."""
    configs: list[Config] = []
    for count in workers:
        configs.append(Config(FLOOR, None, count, tests))
        for database in databases:
            configs.append(Config(KIT, database, count, tests))
            if count == 1:
                configs.append(Config(TEXTBOOK, database, count, tests))
    if growth_tests:
        configs += [Config(FLOOR, None, 1, growth_tests), Config(KIT, SQLITE, 1, growth_tests)]
    return configs


def prepare(configs: Sequence[Config], root: Path) -> dict[tuple[str, int], Path]:
    """Generate one project per (kind, test count) under `root`."""
    directories: dict[tuple[str, int], Path] = {}
    for config in configs:
        key = (config.kind, config.tests)
        if key not in directories:
            directories[key] = projects.generate(
                config.kind, root / f"{config.kind}-{config.tests}", config.tests
            )
    return directories


Runs = dict[str, list[pytest_runs.PytestRun]]


def measure(
    configs: Sequence[Config],
    directories: dict[tuple[str, int], Path],
    *,
    repeat: int,
    server_url: str | None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Runs:
    runs: Runs = {config.key: [] for config in configs}
    # Unmeasured: the first import of everything the kit loads writes bytecode caches.
    warm = next(config for config in configs if config.kind == KIT)
    pytest_runs.run(directories[(warm.kind, warm.tests)], warm.pytest_args(), expect=warm.tests,
                    env=warm.env(server_url))  # fmt: skip
    for repetition in range(repeat):
        order = list(configs) if repetition % 2 == 0 else list(reversed(configs))
        for config in order:
            run = pytest_runs.run(
                directories[(config.kind, config.tests)],
                config.pytest_args(),
                expect=config.tests,
                env=config.env(server_url),
            )
            runs[config.key].append(run)
            log(
                f"isolation {repetition + 1}/{repeat}: {config.label}: tests {run.tests:.2f} s, "
                f"pytest {run.summary.seconds:.2f} s, wall {run.wall:.2f} s"
            )
    return runs


# How a run's time is read: the conftest's stopwatch (the figures), pytest's "in X s", the wall clock.
TIMERS: dict[str, Callable[[pytest_runs.PytestRun], float]] = {
    "tests": lambda run: run.tests,
    "pytest": lambda run: run.summary.seconds,
    "wall": lambda run: run.wall,
}


def seconds(runs: Sequence[pytest_runs.PytestRun], timer: str = "tests") -> list[float]:
    return [TIMERS[timer](run) for run in runs]


def overhead_ms(config: Config, runs: Runs, timer: str = "tests") -> float:
    floor = runs[config.floor().key]
    return 1000 * overhead_per_test(seconds(runs[config.key], timer), seconds(floor, timer), config.tests)


def figures(configs: Sequence[Config], runs: Runs) -> list[Figure]:
    """Floor rows, a row per kit configuration against the recipe, then the growth rows."""
    tests = configs[0].tests
    main = [config for config in configs if config.tests == tests]
    found = [
        Figure(
            PART,
            f"floor: {config.tests:,} no-op async tests, {config.mode} (reference)",
            median(seconds(runs[config.key])),
            "s",
            detail=(
                f"pytest {median(seconds(runs[config.key], 'pytest')):.2f} s, "
                f"wall {median(seconds(runs[config.key], 'wall')):.2f} s"
            ),
        )
        for config in main
        if config.kind == FLOOR
    ]
    for config in main:
        if config.kind != KIT:
            continue
        value = overhead_ms(config, runs)
        reference = _reference_for(config, runs)
        found.append(
            Figure(
                PART,
                f"kit on {LABELS[config.database or SQLITE]}, {config.mode}: cost per test over the floor",
                value,
                "ms/test",
                reference=f"{LABELS[reference.kind]}, {reference.mode}" if reference else "",
                reference_value=overhead_ms(reference, runs) if reference else None,
                target=at_most(value, TARGET_MS, " ms/test"),
                detail=_run_times(runs[config.key]),
            )
        )
    return found + growth_figures(configs, runs)


def _run_times(runs: Sequence[pytest_runs.PytestRun]) -> str:
    return (
        f"tests {median(seconds(runs)):.2f} s; pytest {median(seconds(runs, 'pytest')):.2f} s, "
        f"wall {median(seconds(runs, 'wall')):.2f} s"
    )


def _reference_for(config: Config, runs: Runs) -> Config | None:
    """Serial: the recipe. Under xdist: the kit serial, so the ratio is what the workers bought."""
    if config.workers == 1:
        reference = Config(TEXTBOOK, config.database, 1, config.tests)
    else:
        reference = Config(KIT, config.database, 1, config.tests)
    return reference if reference.key in runs else None


def growth_figures(configs: Sequence[Config], runs: Runs) -> list[Figure]:
    small = configs[0].tests
    found: list[Figure] = []
    for large in (config for config in configs if config.tests != small):
        base = Config(large.kind, large.database, large.workers, small)
        if base.key not in runs:
            continue
        if large.kind == FLOOR:
            cost_small = median(seconds(runs[base.key])) / small * 1000
            cost_large = median(seconds(runs[large.key])) / large.tests * 1000
            what = "floor: time per test"
        else:
            cost_small, cost_large = overhead_ms(base, runs), overhead_ms(large, runs)
            what = f"{LABELS[large.kind]} on {LABELS[large.database or SQLITE]}: cost per test over the floor"
        value = growth(cost_small, cost_large)
        found.append(
            Figure(
                PART,
                f"growth, {what}, {large.tests:,} over {small:,} tests, {large.mode}",
                value,
                "x",
                target=at_most(value, GROWTH_TARGET, "x"),
                detail=f"{cost_large:.3f} ms/test at {large.tests:,}, {cost_small:.3f} at {small:,}",
            )
        )
    return found


def measurements(configs: Sequence[Config], runs: Runs) -> dict[str, Any]:
    return {
        config.key: {
            "kind": config.kind,
            "database": config.database,
            "workers": config.workers,
            "tests": config.tests,
            **{f"{timer}_seconds": seconds(runs[config.key], timer) for timer in TIMERS},
        }
        for config in configs
    }
