"""The pytest projects the bench runs (the same tests on the kit, on the textbook recipe, on pytest-django,
and none; and the request project), and one timed pytest run of one.

Each project is made of checked-in folders under `projects/` (linted and type-checked as the rest is),
copied over each other into a directory of its own. A project's one `*_tests.py` module is copied once
per 50 tests, as test_m000.py, test_m001.py, ..., and `benchsizes.json` tells each copy its size (see
`projects/common/benchsizes.py`). Everything else a project reads when it runs: its database from
`--db` or STARLING_TEST_DATABASE_URL, the stopwatch's file from BENCH_CLOCK_OUT.

A run is timed three ways, all kept in the JSON:

- `tests`: the projects' stopwatch (`projects/common/benchclock.py`), from the end of collection to
  the end of the session. The figures use this one: interpreter start-up, plugin imports and, under
  xdist, worker start-up are the noisiest part of a run (seconds on a busy machine) and no test pays
  for them;
- `pytest`: the session from its start, as pytest's own "N passed in X.XXs" counts it: collection and
  worker start-up included, and so the import of the kit's plugin by xdist workers;
- `wall`: the whole subprocess, seen from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SOURCES = Path(__file__).with_name("projects")
TESTS_PER_MODULE = 50
TEMPLATE = "*_tests.py"
SIZES = "benchsizes.json"

# The floor: async tests that do nothing, without the kit's plugin.
FLOOR = "floor"
# The kit: `db_session` from the starling plugin, which the pytest11 entry point loads.
KIT = "kit"
# SQLAlchemy's documented recipe written by hand, without the kit's plugin.
TEXTBOOK = "textbook"
# pytest-django's `django_db` on a Django model: the peer users know, in an environment of its own
# (`peers.py`); its tests are synchronous, as Django's are.
DJANGO = "pytest-django"
# One test timing requests through the kit's client and through a bare Starlette app (`inprocess.py`).
REQUESTS = "requests"
# The folders each project is made of, copied in this order: a later folder's pytest.ini replaces
# common's.
LAYOUTS = {
    FLOOR: ("common", "floor"),
    KIT: ("common", "rows", "service", "kit"),
    TEXTBOOK: ("common", "rows", "textbook"),
    DJANGO: ("common", "django"),
    REQUESTS: ("common", "service", "requests"),
}
# Where the stopwatch (projects/common/benchclock.py) writes its seconds.
CLOCK_ENV = "BENCH_CLOCK_OUT"
# Plugins of the fuzz group, installed in the bench's environment but in no suite's: they would only
# add import time to every run.
UNRELATED_PLUGINS = ("schemathesis", "hypothesispytest")
TIMEOUT = 600.0


def folders(kind: str) -> list[Path]:
    """The checked-in folders a project of `kind` is made of; each is an import root when it runs."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown project kind {kind!r}; expected one of {', '.join(LAYOUTS)}")
    return [SOURCES / name for name in LAYOUTS[kind]]


def module_sizes(tests: int, per_module: int = TESTS_PER_MODULE) -> list[int]:
    """How many tests each module holds: full modules of `per_module`, then the remainder."""
    if tests < 1:
        raise ValueError(f"a project needs at least one test, got {tests}")
    full, rest = divmod(tests, per_module)
    return [per_module] * full + ([rest] if rest else [])


def generate(kind: str, directory: Path, tests: int) -> Path:
    """Copy the project of `kind` into `directory` (created) with `tests` tests; returns it."""
    sources = folders(kind)
    sizes = {f"test_m{index:03d}": size for index, size in enumerate(module_sizes(tests))}
    for folder in sources:
        ignored = shutil.ignore_patterns("__pycache__", TEMPLATE)
        shutil.copytree(folder, directory, ignore=ignored, dirs_exist_ok=True)
    [template] = [module for folder in sources for module in folder.glob(TEMPLATE)]
    for module in sizes:
        shutil.copyfile(template, directory / f"{module}.py")
    (directory / SIZES).write_text(json.dumps(sizes))
    return directory


@dataclass(frozen=True)
class PytestRun:
    tests: float  # seconds, from the end of collection to the end of the session
    pytest: float  # seconds, the session from its start
    wall: float  # seconds, the whole subprocess


class PytestFailed(RuntimeError):
    pass


def command(args: Sequence[str], *, python: str = sys.executable) -> list[str]:
    disabled = [flag for plugin in UNRELATED_PLUGINS for flag in ("-p", f"no:{plugin}")]
    return [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *disabled, *args]


def run(
    directory: Path,
    args: Sequence[str],
    *,
    expect: int,
    env: Mapping[str, str | None] | None = None,
    python: str = sys.executable,
) -> PytestRun:
    """Run pytest in `directory` with `python` (`env`: None removes a variable); raises PytestFailed
    unless exactly `expect` tests passed and none failed."""
    clock = directory / ".bench-clock.json"
    clock.unlink(missing_ok=True)
    merged = {**os.environ, **(env or {}), CLOCK_ENV: str(clock)}
    environment = {name: value for name, value in merged.items() if value is not None}
    started = time.perf_counter()
    completed = subprocess.run(
        command(args, python=python), cwd=directory, env=environment, capture_output=True, text=True,
        timeout=TIMEOUT, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    counted = json.loads(clock.read_text()) if clock.exists() else {"passed": 0, "failed": 0}
    if (
        completed.returncode != 0
        or counted["passed"] != expect
        or counted["failed"]
        or "tests" not in counted
    ):
        output = (completed.stdout + completed.stderr)[-3000:]
        raise PytestFailed(
            f"pytest in {directory} {' '.join(args)}: exit code {completed.returncode}, {counted['passed']} "
            f"passed, {counted['failed']} failed, expected {expect} passed:\n{output}"
        )
    return PytestRun(counted["tests"], counted["pytest"], wall)
