"""Starling test kit: a pytest plugin, and the doubles its fixtures hand out."""

from starling_testkit.binding import AppFactory, BoundDatabase
from starling_testkit.clock import FrozenClock
from starling_testkit.inprocess import in_process
from starling_testkit.mocks import FakePublisher, StreamFailed, fake_stream, mock_of
from starling_testkit.tokens import TokenFactory

__all__ = [
    "AppFactory",
    "BoundDatabase",
    "FakePublisher",
    "FrozenClock",
    "StreamFailed",
    "TokenFactory",
    "fake_stream",
    "in_process",
    "mock_of",
]
