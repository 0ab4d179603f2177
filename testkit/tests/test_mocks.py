"""The doubles keep to the real interfaces and fail the way real collaborators fail."""

from __future__ import annotations

import pytest

from starling_core.events import Event, Message, Publisher
from starling_testkit import FakePublisher, StreamFailed, fake_stream, mock_of


class Gateway:
    async def fetch(self, order_id: str, *, fresh: bool = False) -> dict[str, str]:
        raise AssertionError("the real one is never called")


async def test_mock_of_answers_like_the_real_class() -> None:
    gateway = mock_of(Gateway)
    gateway.fetch.return_value = {"id": "o-1"}
    assert await gateway.fetch("o-1", fresh=True) == {"id": "o-1"}
    gateway.fetch.assert_awaited_once_with("o-1", fresh=True)


def test_mock_of_refuses_a_method_the_real_class_lacks() -> None:
    gateway = mock_of(Gateway)
    with pytest.raises(AttributeError):
        gateway.fetch_all()


async def test_mock_of_refuses_a_wrong_signature() -> None:
    gateway = mock_of(Gateway)
    with pytest.raises(TypeError):
        await gateway.fetch("o-1", "extra")


async def test_fake_stream_yields_then_fails_half_way() -> None:
    seen: list[int] = []

    async def consume() -> None:
        async for item in fake_stream([1, 2, 3, 4], fail_after=2):
            seen.append(item)

    with pytest.raises(StreamFailed):
        await consume()
    assert seen == [1, 2]
    assert [item async for item in fake_stream("ab")] == ["a", "b"]


async def test_fake_publisher_is_a_publisher_that_records_and_fails_on_request() -> None:
    publisher: Publisher = FakePublisher()
    assert isinstance(publisher, FakePublisher)
    event = Event[dict[str, int]](type="thing.done", key="k1", payload={"n": 1})
    first = [Message("things", "k1", event.to_json()), Message("other", "k2", b"{}")]
    publisher.fail_on(2)
    await publisher.publish(first)
    with pytest.raises(ConnectionError):
        await publisher.publish([Message("things", "k3", b"{}")])
    assert publisher.published == first
    assert publisher.calls == [first, [Message("things", "k3", b"{}")]]
    assert publisher.events("things") == [event]
