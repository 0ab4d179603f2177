"""Whole processes: the kit's project against pytest-django's, each in the environment its users have.

Interpreter start-up, imports, collection and the tests, seen from outside (`wall`): what a developer
waits for. The kit's project runs in the users service's own test environment (`peers`), pytest-django's
in one with Django, pytest-django and psycopg. Runs alternate; figures are medians. Two sizes: the
500 tests of the isolation part, and one test (a developer's loop: run the test being written).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starling_devtools.bench import projects, pytest_runs
from starling_devtools.bench.isolation import DATABASE_URL_ENV, LABELS, POSTGRES
from starling_devtools.bench.results import Figure, at_most, times_ahead
from starling_devtools.bench.stats import median

PART = "whole process"
AHEAD_TARGET = 2.0  # pytest-django's 500 tests take at least twice as long as the kit's


@dataclass(frozen=True)
class Pair:
    database: str
    tests: int

    @property
    def label(self) -> str:
        return f"{self.tests:,} test{'s' if self.tests > 1 else ''} on {LABELS[self.database]}"


Walls = dict[tuple[str, str, int], list[float]]  # (kind, database, tests) -> wall seconds


def measure(
    root: Path,
    databases: Sequence[str],
    *,
    pythons: dict[str, str],
    server_url: str | None,
    repeat: int,
    sizes: Sequence[int] = (500, 1),
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True),
) -> Walls:
    pairs = [Pair(database, tests) for tests in sizes for database in databases]
    directories = {
        (kind, tests): projects.generate(kind, root / f"whole-{kind}-{tests}", tests)
        for tests in sizes
        for kind in (projects.KIT, projects.DJANGO)
    }
    walls: Walls = {}
    for repetition in range(repeat + 1):  # the first round is unmeasured: bytecode caches, page cache
        for pair in pairs if repetition % 2 == 0 else list(reversed(pairs)):
            for kind in (
                (projects.KIT, projects.DJANGO) if repetition % 2 == 0 else (projects.DJANGO, projects.KIT)
            ):
                env = {DATABASE_URL_ENV: server_url if pair.database == POSTGRES else None}
                args = ["--db", pair.database] if kind == projects.KIT else []
                run = pytest_runs.run(directories[(kind, pair.tests)], args, expect=pair.tests, env=env,
                                      python=pythons[kind])  # fmt: skip
                if repetition:
                    walls.setdefault((kind, pair.database, pair.tests), []).append(run.wall)
                    log(
                        f"whole process {repetition}/{repeat}: {LABELS[kind]}, {pair.label}: {run.wall:.2f} s"
                    )
    return walls


def figures(walls: Walls) -> list[Figure]:
    found: list[Figure] = []
    for kind, database, tests in sorted(walls, key=lambda key: (-key[2], key[1])):
        if kind != projects.KIT:
            continue
        kit = median(walls[(kind, database, tests)])
        peer_runs = walls.get((projects.DJANGO, database, tests))
        if not peer_runs:
            continue
        peer = median(peer_runs)
        pair = Pair(database, tests)
        if tests > 1:
            times = peer / kit
            name = f"{pair.label}: pytest-django's whole run over the kit's (users' test environment)"
            costs = f"kit {kit:.2f} s, pytest-django {peer:.2f} s"
            found.append(times_ahead(PART, name, times, costs, AHEAD_TARGET))
        else:
            found.append(
                Figure(
                    PART,
                    f"{pair.label}: the kit's whole run (users' test environment) against pytest-django's",
                    kit,
                    "s",
                    reference="pytest-django",
                    reference_value=peer,
                    target=at_most(kit / peer, 1.0, "x of pytest-django's"),
                )
            )
    return found


def measurements(walls: Walls) -> dict[str, Any]:
    return {f"{kind}-{database}-{tests}": seconds for (kind, database, tests), seconds in walls.items()}
