"""Figure 1: the kit's isolated-database cost per test, over the no-op floor, against the textbook recipe
and pytest-django (the peer, run in an environment of its own: `peers.py`).

Each configuration is a generated project run by pytest in a subprocess (see `projects` and
`pytest_runs`) and timed by its conftest's stopwatch, from the end of collection to the last teardown.
Runs alternate: every repetition runs each configuration once, in reverse order every other time, and
a configuration's cost per test is the median of its differences with the floor run of the same
repetition. Under `-n 2` that cost is elapsed time per test with two workers sharing the machine's
two cores (and, on PostgreSQL, the server's processes).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starling_devtools.bench import projects, pytest_runs, testprofile
from starling_devtools.bench.projects import DJANGO, FLOOR, KIT, TEXTBOOK
from starling_devtools.bench.results import Figure, at_most, times_ahead
from starling_devtools.bench.stats import growth, median, overhead_per_test

PART = "isolation"
# At most this many ms a test over the floor, on both databases, serial and -n 2, 500 and 2,000 tests
# (issue 15); the anchors' first target was 3 ms, still what `figures` checks unless told otherwise.
TARGET_MS = 1.5
ANCHOR_TARGET_MS = 3.0
# ... and at least this many times cheaper than the textbook recipe in the same configuration.
AHEAD_TARGET = 2.0
GROWTH_TARGET = 1.1
DATABASE_URL_ENV = "STARLING_TEST_DATABASE_URL"
SQLITE = "sqlite"
POSTGRES = "postgres"
LABELS = {
    FLOOR: "no-op floor",
    KIT: "kit",
    TEXTBOOK: "textbook recipe",
    DJANGO: "pytest-django",
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
        elif self.kind == DJANGO:
            pass  # its own environment, without the kit
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
    tests: int,
    *,
    growth_tests: int | None,
    databases: Sequence[str],
    workers: Sequence[int] = (1, 2),
    everywhere: bool = False,
    peer: bool = False,
) -> list[Config]:
    """Every configuration to run: the floor and the kit per database and mode, the recipe serial, then
    the growth pair. `everywhere` runs the recipe in every mode and the whole grid again at
    `growth_tests` (what the 2x target is checked on); `peer` adds pytest-django, serial, per database."""
    configs: list[Config] = []
    for count in workers:
        configs.append(Config(FLOOR, None, count, tests))
        for database in databases:
            configs.append(Config(KIT, database, count, tests))
            if count == 1 or everywhere:
                configs.append(Config(TEXTBOOK, database, count, tests))
    if peer:
        configs += [Config(DJANGO, database, 1, tests) for database in databases]
    if growth_tests and everywhere:
        for count in workers:
            configs.append(Config(FLOOR, None, count, growth_tests))
            for database in databases:
                configs += [
                    Config(KIT, database, count, growth_tests),
                    Config(TEXTBOOK, database, count, growth_tests),
                ]
    elif growth_tests:
        configs += [Config(FLOOR, None, 1, growth_tests), Config(KIT, SQLITE, 1, growth_tests)]
    return configs


def prepare(configs: Sequence[Config], root: Path) -> dict[tuple[str, int], Path]:
    """Generate one project per (kind, test count) under `root`."""
    keys = dict.fromkeys((config.kind, config.tests) for config in configs)
    return {(kind, tests): projects.generate(kind, root / f"{kind}-{tests}", tests) for kind, tests in keys}


Runs = dict[str, list[pytest_runs.PytestRun]]


def measure(
    configs: Sequence[Config],
    directories: dict[tuple[str, int], Path],
    *,
    repeat: int,
    server_url: str | None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
    pythons: dict[str, str] | None = None,
) -> Runs:
    """Run every configuration `repeat` times, alternating; `pythons` names the interpreter of a kind
    that runs in an environment of its own (pytest-django)."""
    runs: Runs = {config.key: [] for config in configs}
    python_for = pythons or {}
    # Unmeasured: the first import of everything each environment loads writes bytecode caches.
    warm = [next(config for config in configs if config.kind == KIT)]
    warm += [config for config in configs if config.kind == DJANGO][:1]
    for config in warm:
        python = python_for.get(config.kind, sys.executable)
        pytest_runs.run(directories[(config.kind, config.tests)], config.pytest_args(), expect=config.tests,
                        env=config.env(server_url), python=python)  # fmt: skip
    for repetition in range(repeat):
        order = list(configs) if repetition % 2 == 0 else list(reversed(configs))
        for config in order:
            run = pytest_runs.run(
                directories[(config.kind, config.tests)],
                config.pytest_args(),
                expect=config.tests,
                env=config.env(server_url),
                python=python_for.get(config.kind, sys.executable),
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


def figures(
    configs: Sequence[Config], runs: Runs, *, target_ms: float = ANCHOR_TARGET_MS, ahead: float | None = None
) -> list[Figure]:
    """Floor rows, a row per kit configuration against its reference (with `ahead`, one more: how many
    times cheaper than the recipe in the same configuration), pytest-django's rows, then growth."""
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
    for config in configs:
        if config.kind != KIT:
            continue
        value = overhead_ms(config, runs)
        reference = _reference_for(config, runs)
        size = "" if config.tests == tests else f", {config.tests:,} tests"
        where = f"kit on {LABELS[config.database or SQLITE]}, {config.mode}{size}"
        found.append(
            Figure(
                PART,
                f"{where}: cost per test over the floor",
                value,
                "ms/test",
                reference=f"{LABELS[reference.kind]}, {reference.mode}" if reference else "",
                reference_value=overhead_ms(reference, runs) if reference else None,
                target=at_most(value, target_ms, " ms/test"),
                detail=_run_times(runs[config.key]),
            )
        )
        recipe = Config(TEXTBOOK, config.database, config.workers, config.tests)
        if ahead is not None and recipe.key in runs:
            times = ratio_of(overhead_ms(recipe, runs), value)
            recipe_ms = f"textbook recipe: {overhead_ms(recipe, runs):.2f} ms/test"
            name = f"{where}: times cheaper than the textbook recipe"
            found.append(times_ahead(PART, name, times, recipe_ms, ahead))
    for config in main:
        if config.kind != DJANGO:
            continue
        kit = Config(KIT, config.database, config.workers, config.tests)
        found.append(
            Figure(
                PART,
                f"pytest-django on {LABELS[config.database or SQLITE]}, {config.mode}: cost per test over "
                "the floor (peer)",
                overhead_ms(config, runs),
                "ms/test",
                reference=f"kit, {kit.mode}" if kit.key in runs else "",
                reference_value=overhead_ms(kit, runs) if kit.key in runs else None,
                detail=_run_times(runs[config.key]),
            )
        )
    return found + growth_figures(configs, runs)


def ratio_of(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator > 0 else None


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
    for large in (config for config in configs if config.tests != small and config.kind in (FLOOR, KIT)):
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


def profile(
    kit: Path, floor: Path, database: str, server_url: str | None, workdir: Path, log: Callable[[str], None]
) -> dict[str, Any]:
    """One profiled run of the kit's project and of the floor's; the table goes to stderr."""
    found: dict[str, Any] = {}
    for name, directory in (("kit", kit), ("floor", floor)):
        out = workdir / f"profile-{name}-{database}.json"
        config = Config(KIT if name == "kit" else FLOOR, database, 1, 1)
        args = [*config.pytest_args(), "-p", "starling_devtools.bench.testprofile"]
        env = {**config.env(server_url), testprofile.OUT_ENV: str(out)}
        pytest_runs.run(directory, args, expect=projects.count_tests(directory), env=env)
        found[name] = json.loads(out.read_text())
    title = f"where an isolated test's time goes, {database}"
    log("\n" + testprofile.table(found["kit"], found["floor"], title))
    return found
