"""One pytest run of a generated project, timed three ways.

- `tests`: the projects' stopwatch (`projects/common/benchclock.py`), from the end of collection to
  the end of the session. The figures use this one: interpreter start-up, plugin imports and, under
  xdist, worker start-up are the noisiest part of a run (seconds on a busy machine) and no test pays
  for them.
- `summary.seconds`: pytest's own "N passed in X.XXs", which includes collection and worker start-up,
  and so the import of the kit's plugin by xdist workers, which the floor's workers do not import.
- `wall`: the whole subprocess, seen from outside.

All three are kept in the JSON.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from starling_devtools.bench.projects import CLOCK_ENV

# Plugins of the fuzz group, installed in the bench's environment but in no suite's: they would only
# add import time to every run.
UNRELATED_PLUGINS = ("schemathesis", "hypothesispytest")
TIMEOUT = 600.0

_SUMMARY = re.compile(r"=*\s*(?P<counts>[^=\n]*?)\s+in\s+(?P<seconds>\d+(?:\.\d+)?)s\b[^\n]*$", re.MULTILINE)
_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|deselected)")


@dataclass(frozen=True)
class Summary:
    passed: int
    failed: int  # failures and errors
    seconds: float  # what pytest reports: "in X.XXs"


@dataclass(frozen=True)
class PytestRun:
    summary: Summary
    wall: float  # seconds, the whole subprocess
    tests: float  # seconds, from the end of collection to the end of the session


class PytestFailed(RuntimeError):
    pass


def parse_summary(output: str) -> Summary:
    """Read pytest's last summary line, e.g. "500 passed in 1.94s" or "== 1 failed, 2 passed in 3.10s ==="."""
    matches = list(_SUMMARY.finditer(output))
    if not matches:
        raise ValueError('no pytest summary line ("... in X.XXs") in the output')
    last = matches[-1]
    counts: dict[str, int] = {}
    for number, word in _COUNT.findall(last.group("counts")):
        key = "errors" if word.startswith("error") else word
        counts[key] = counts.get(key, 0) + int(number)
    return Summary(
        passed=counts.get("passed", 0),
        failed=counts.get("failed", 0) + counts.get("errors", 0),
        seconds=float(last.group("seconds")),
    )


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
    """Run pytest in `directory` with `python`; raises PytestFailed unless exactly `expect` tests passed."""
    environment = dict(os.environ)
    for name, value in (env or {}).items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    clock = directory / ".bench-clock.json"
    clock.unlink(missing_ok=True)
    environment[CLOCK_ENV] = str(clock)
    started = time.perf_counter()
    completed = subprocess.run(
        command(args, python=python),
        cwd=directory,
        env=environment,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    wall = time.perf_counter() - started
    output = completed.stdout + completed.stderr
    try:
        summary = parse_summary(output)
    except ValueError:
        raise PytestFailed(f"pytest in {directory} printed no summary:\n{output[-3000:]}") from None
    if completed.returncode != 0 or summary.passed != expect or summary.failed:
        raise PytestFailed(
            f"pytest in {directory} {' '.join(args)}: {summary.passed} passed, {summary.failed} failed, "
            f"expected {expect} passed:\n{output[-3000:]}"
        )
    if not clock.exists():
        raise PytestFailed(f"pytest in {directory} ran without the bench's stopwatch in its conftest")
    return PytestRun(summary, wall, float(json.loads(clock.read_text())["seconds"]))
