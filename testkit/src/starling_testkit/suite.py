"""What the kit does to every test of a suite that opts in (`starling_suite = true` in its pytest config).

- Every async test runs on the session loop, the one the engine lives on (the plugin's
  `pytest_collection_modifyitems`); without the opt-in, only the tests that use the kit's database do.
- `gc.freeze()` once every plugin is imported (`freeze_heap`).
- The leak guard on every test: a task left pending or a connection left checked out fails the test,
  named.

Registered by the plugin as `starling-suite` when the suite opts in, never otherwise.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from starling_testkit import guards


def freeze_heap() -> None:
    # Every plugin is imported by now (SQLAlchemy, pydantic, hypothesis, faker...): a heap of objects
    # that live until the process ends. Freezing them keeps each full garbage collection from walking
    # them all again (~100 ms each, several during collection and the run).
    gc.freeze()


@pytest.fixture(scope="session")
def _starling_checkouts(db_engine: AsyncEngine) -> guards.CheckoutTracker:
    return guards.CheckoutTracker(db_engine)


@pytest.fixture(autouse=True)
def _starling_leak_guard(
    request: pytest.FixtureRequest, _starling_session_loop: asyncio.AbstractEventLoop
) -> Iterator[None]:
    """Fail a test that leaves a task pending or a connection checked out, naming the leak."""
    # Synchronous: a test that leaks nothing, nearly all of them, costs a set difference instead
    # of two runs of the loop through pytest-asyncio (about 0.2 ms a test).
    loop = _starling_session_loop
    before = asyncio.all_tasks(loop)
    tracker: guards.CheckoutTracker | None = None
    held_before: dict[int, str] = {}
    if "db_engine" in request.fixturenames:
        tracker = request.getfixturevalue("_starling_checkouts")
        held_before = tracker.outstanding()
    yield
    # Autouse fixtures are set up first and torn down last: every other fixture has finished here.
    problems = [f"task left pending: {guards.describe_task(t)}" for t in guards.leaked_tasks(loop, before)]
    if tracker is not None:
        leaked = {key: where for key, where in tracker.outstanding().items() if key not in held_before}
        problems += [f"database connection left checked out, from {where}" for where in leaked.values()]
    if problems:
        pytest.fail("starling: the test leaked\n  " + "\n  ".join(problems), pytrace=False)
