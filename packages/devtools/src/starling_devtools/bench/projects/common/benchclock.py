"""The bench's stopwatch, a plugin every project's conftest loads: the seconds from the moment the tests
can start (collection done; under xdist, the last worker's) to the last test's teardown, which tears
down the session's fixtures too; beside them the whole session's (nearly what pytest's "in X s" says),
and how many tests passed and failed.

The stopwatch leaves out what no test pays for: interpreter and worker start-up and shutdown, imports,
collection. The bench names the JSON file it writes in BENCH_CLOCK_OUT (`projects.CLOCK_ENV`).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

CLOCK_ENV = "BENCH_CLOCK_OUT"
_CLOCK: dict[str, float] = {"passed": 0, "failed": 0}


def pytest_sessionstart(session: pytest.Session) -> None:
    _CLOCK["session"] = time.perf_counter()


def pytest_collection_finish(session: pytest.Session) -> None:
    _CLOCK["start"] = time.perf_counter()


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node: Any, ids: list[str]) -> None:
    _CLOCK["start"] = time.perf_counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    # Under xdist the workers' reports reach the controller's hook too.
    if report.when == "call" and report.passed:
        _CLOCK["passed"] += 1
    if report.failed:
        _CLOCK["failed"] += 1
    # The last item's teardown also tears down the session's fixtures, in each worker too.
    if report.when == "teardown":
        _CLOCK["end"] = time.perf_counter()


def pytest_sessionfinish(session: pytest.Session) -> None:
    out = os.environ.get(CLOCK_ENV)
    if out and "start" in _CLOCK and not hasattr(session.config, "workerinput"):
        tests = _CLOCK.get("end", _CLOCK["start"]) - _CLOCK["start"]
        seconds = {"tests": tests, "pytest": time.perf_counter() - _CLOCK["session"]}
        with open(out, "w") as output:
            json.dump(seconds | {"passed": _CLOCK["passed"], "failed": _CLOCK["failed"]}, output)
