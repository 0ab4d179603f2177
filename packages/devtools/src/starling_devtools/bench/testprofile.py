"""Where one test's time goes: a pytest plugin the bench loads (`-p starling_devtools.bench.testprofile`)
into a generated project, and the table it makes of what that plugin wrote.

Per test, with `time.perf_counter` around pytest's own hooks (no sampling, no tracing, so nothing is
slowed but the few calls timed): the setup, call and teardown phases; inside setup, each fixture's own
setup (its dependencies excluded, as pytest runs them first); inside the kit's database fixture, the
checkout and BEGIN (`Isolation.begin`) and, at teardown, the ROLLBACK, the sessions' close and the
check-in (`Isolation.end`); inside the call, each SQL statement, by its first word. Medians over the
run's tests, in microseconds.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Generator
from typing import Any

import pytest

OUT_ENV = "BENCH_PROFILE_OUT"
PHASES = ("setup", "call", "teardown")
# Per test, seconds by "<phase>: <what>" ("<phase>:" alone for the whole phase).
_TIMES: dict[str, list[float]] = defaultdict(list)
_CURRENT: dict[str, float] = defaultdict(float)
_PHASE = ["setup"]


def _add(phase: str, what: str, seconds: float) -> None:
    _CURRENT[f"{phase}: {what}".strip()] += seconds


def _timed(phase: str, what: str, function: Callable[..., Any]) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await function(*args, **kwargs)
        finally:
            _add(phase, what, time.perf_counter() - started)

    return wrapper


def pytest_configure(config: pytest.Config) -> None:
    try:
        from sqlalchemy import event
        from sqlalchemy.engine import Engine

        from starling_testkit import isolation
    except ImportError:  # the floor: no kit, no SQLAlchemy to watch
        return
    kit = isolation.Isolation
    kit.begin = _timed("setup", "db_connection setup: checkout + BEGIN", kit.begin)  # type: ignore[method-assign]
    kit.end = _timed("teardown", "db_connection teardown: ROLLBACK, close, check-in", kit.end)  # type: ignore[method-assign]
    started: list[float] = []

    def before(*args: Any) -> None:
        started.append(time.perf_counter())

    def after(connection: Any, cursor: Any, statement: str, *args: Any) -> None:
        seconds = time.perf_counter() - started.pop()
        _add(_PHASE[0], f"{_PHASE[0]} statement: {statement.split()[0].upper()}", seconds)

    event.listen(Engine, "before_cursor_execute", before)
    event.listen(Engine, "after_cursor_execute", after)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
    started = time.perf_counter()
    try:
        return (yield)
    finally:
        if fixturedef.scope == "function":
            _add("setup", f"fixture setup: {fixturedef.argname}", time.perf_counter() - started)


def _phase(name: str) -> Any:
    @pytest.hookimpl(wrapper=True)
    def hook(item: pytest.Item) -> Generator[None, Any, Any]:
        _PHASE[0] = name
        started = time.perf_counter()
        try:
            return (yield)
        finally:
            _add(name, "", time.perf_counter() - started)
            if name == "teardown":
                for key, seconds in _CURRENT.items():
                    _TIMES[key].append(seconds)
                _CURRENT.clear()

    return hook


pytest_runtest_setup, pytest_runtest_call, pytest_runtest_teardown = (_phase(phase) for phase in PHASES)


def pytest_unconfigure(config: pytest.Config) -> None:
    out = os.environ.get(OUT_ENV)
    if not out or hasattr(config, "workerinput"):
        return
    tests = len(_TIMES.get("call:", []))
    medians = {
        key: 1e6 * statistics.median(values + [0.0] * (tests - len(values))) for key, values in _TIMES.items()
    }
    with open(out, "w") as output:
        json.dump({"tests": tests, "median_us": medians}, output)


def table(kit: dict[str, Any], floor: dict[str, Any], title: str) -> str:
    """The kit's phases beside the floor's, then what they are made of, in microseconds per test."""
    kit_us, floor_us = kit["median_us"], floor["median_us"]
    lines = [
        f"{title} ({kit['tests']} tests; median microseconds per test)",
        "",
        f"{'':62} {'kit':>8} {'floor':>8}",
    ]
    for phase in PHASES:
        lines.append(f"{phase:62} {kit_us.get(f'{phase}:', 0):8.0f} {floor_us.get(f'{phase}:', 0):8.0f}")
        parts = sorted((key for key in kit_us if key.startswith(f"{phase}: ")), key=lambda key: -kit_us[key])
        lines += [f"  {key.split(': ', 1)[1]:60} {kit_us[key]:8.0f}" for key in parts if kit_us[key] >= 1]
    total, floor_total = (sum(us.get(f"{phase}:", 0) for phase in PHASES) for us in (kit_us, floor_us))
    lines.append(f"{'total (the three phases)':62} {total:8.0f} {floor_total:8.0f}")
    return "\n".join(lines)
