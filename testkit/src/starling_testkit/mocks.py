"""Test doubles that keep to the real interfaces: `mock_of`, `fake_stream`, `FakePublisher`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, TypeVar
from unittest.mock import create_autospec

from starling_core.events import Message, RawEvent

T = TypeVar("T")


def mock_of(cls: type[Any]) -> Any:
    """A mock instance of `cls`: async methods are AsyncMocks, and a call the real class could not
    take (a method it lacks, a wrong signature) fails, so a double cannot drift from the real thing."""
    return create_autospec(cls, instance=True, spec_set=True)


class StreamFailed(ConnectionError):
    """What `fake_stream` raises by default when told to fail half-way."""


async def fake_stream(
    items: Iterable[T], *, fail_after: int | None = None, error: BaseException | None = None
) -> AsyncIterator[T]:
    """Yield `items` as an async iterator; with `fail_after=n`, raise `error` after n items."""
    for count, item in enumerate(items):
        if fail_after is not None and count >= fail_after:
            break
        yield item
    if fail_after is not None:
        raise error or StreamFailed(f"fake stream failed after {fail_after} items")


class FakePublisher:
    """A `starling_core.events.Publisher` that keeps what it is sent; `fail_on(n)` makes the n-th call
    (1-based) raise instead. Hand it to a `Relay` to see what an app's outbox delivers."""

    def __init__(self) -> None:
        self.published: list[Message] = []
        self.calls: list[list[Message]] = []
        self._failures: dict[int, BaseException] = {}

    def fail_on(self, call: int, error: BaseException | None = None) -> None:
        self._failures[call] = error or ConnectionError(f"publisher failed on call {call}")

    async def publish(self, messages: Sequence[Message]) -> None:
        self.calls.append(list(messages))
        if len(self.calls) in self._failures:
            raise self._failures[len(self.calls)]
        self.published.extend(messages)

    def events(self, topic: str | None = None) -> list[RawEvent]:
        """The envelopes published (on `topic`), in order."""
        return [
            RawEvent.model_validate_json(message.value)
            for message in self.published
            if topic is None or message.topic == topic
        ]
