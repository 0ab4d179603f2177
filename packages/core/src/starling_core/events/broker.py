"""The port between the events machinery and a broker: what is sent, what is received, and the three
things a broker must do (publish, hand out batches, remember how far a group got). `kafka.py` is the
adapter; the test kit's `FakePublisher` and in-process delivery speak the same types."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Message:
    """A message to send: the envelope's key and JSON, on a topic."""

    topic: str
    key: str
    value: bytes
    headers: Headers = ()


@dataclass(frozen=True, kw_only=True)
class Received(Message):
    """A message a subscription handed out, with where it sits in its topic."""

    partition: int = 0
    offset: int = 0


class Publisher(Protocol):
    async def publish(self, messages: Sequence[Message]) -> None:
        """Send `messages`, returning once the broker has every one (raising if it has not)."""


class Subscription(Protocol):
    async def fetch(self, wait: float) -> Sequence[Received]:
        """The next messages of the group's partitions, in order within each; [] after `wait` seconds."""

    async def commit(self, processed: Sequence[Received]) -> None:
        """Remember that the group is done with `processed` (and everything before them)."""

    def lag(self) -> int | None:
        """Messages on the group's partitions that it has not fetched yet (None before it knows)."""


class Broker(Protocol):
    """Makes publishers and subscriptions: `KafkaBroker` is the real one."""

    def publisher(self) -> AbstractAsyncContextManager[Publisher]: ...

    def subscription(
        self, topics: Sequence[str], group: str
    ) -> AbstractAsyncContextManager[Subscription]: ...
