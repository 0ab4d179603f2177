"""Starling test kit: a pytest plugin, the types to annotate its fixtures with, and its test doubles."""

from starling_testkit.binding import AppFactory, BoundDatabase
from starling_testkit.clock import FrozenClock
from starling_testkit.factories import BindFactory
from starling_testkit.guards import UnisolatedWrite
from starling_testkit.inprocess import in_process
from starling_testkit.mocks import FakePublisher, StreamFailed, fake_stream, mock_of
from starling_testkit.queries import MaxQueries
from starling_testkit.tokens import TokenFactory

__all__ = [
    "AppFactory",
    "BindFactory",
    "BoundDatabase",
    "FakePublisher",
    "FrozenClock",
    "MaxQueries",
    "StreamFailed",
    "TokenFactory",
    "UnisolatedWrite",
    "fake_stream",
    "in_process",
    "mock_of",
]
