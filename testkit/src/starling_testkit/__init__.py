"""Starling test kit: a pytest plugin, the types to annotate its fixtures with, and its test doubles.

Names are imported when first used (PEP 562): the plugin itself imports this package, and a suite's
start-up should not pay for what its tests never touch (time-machine, the events port, JWT signing).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starling_testkit.binding import AppFactory, BoundDatabase
    from starling_testkit.clock import FrozenClock
    from starling_testkit.events import PublishedEvents
    from starling_testkit.factories import BindFactory
    from starling_testkit.guards import UnisolatedWrite
    from starling_testkit.inprocess import in_process
    from starling_testkit.mocks import FakePublisher, StreamFailed, fake_stream, mock_of
    from starling_testkit.queries import MaxQueries
    from starling_testkit.tokens import TokenFactory

_WHERE = {
    "AppFactory": "binding",
    "BindFactory": "factories",
    "BoundDatabase": "binding",
    "FakePublisher": "mocks",
    "FrozenClock": "clock",
    "MaxQueries": "queries",
    "PublishedEvents": "events",
    "StreamFailed": "mocks",
    "TokenFactory": "tokens",
    "UnisolatedWrite": "guards",
    "fake_stream": "mocks",
    "in_process": "inprocess",
    "mock_of": "mocks",
}

__all__ = [
    "AppFactory",
    "BindFactory",
    "BoundDatabase",
    "FakePublisher",
    "FrozenClock",
    "MaxQueries",
    "PublishedEvents",
    "StreamFailed",
    "TokenFactory",
    "UnisolatedWrite",
    "fake_stream",
    "in_process",
    "mock_of",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'starling_testkit' has no attribute {name!r}")
    return getattr(importlib.import_module(f"starling_testkit.{module}"), name)
