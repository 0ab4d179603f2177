"""The envelope every event travels in, and `EventType`, which names a kind of event once.

On the wire a message's value is the envelope as JSON, `{"id", "type", "key", "occurred_at", "version",
"payload"}`, and its key is the envelope's `key` (so one key's events share a partition, in order). The
payload is a pydantic model: `Event[RunFinished]` validates it on the way in and serialises it on the
way out.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

P = TypeVar("P")


def new_event_id() -> str:
    return str(uuid.uuid4())


class Event(BaseModel, Generic[P]):
    """One event: `Event[Payload](type=..., key=..., payload=...)`; id and time are filled in."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(default_factory=new_event_id, min_length=1, max_length=36)
    type: str = Field(min_length=1, max_length=255)
    key: str = Field(min_length=1, max_length=255)
    occurred_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
    version: int = Field(default=1, ge=1)
    payload: P

    @field_validator("occurred_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    def to_json(self) -> bytes:
        """The message value."""
        return self.model_dump_json().encode()


# What a consumer that does not know an event's payload reads it as.
RawEvent = Event[dict[str, Any]]


@dataclass(frozen=True)
class EventType(Generic[P]):
    """A kind of event: its `type` name, the topic it is published on, its payload model, its version.

    `RUN_FINISHED = EventType("run.finished", AGENTS_RUNS, RunFinished)`; then `RUN_FINISHED.new(key,
    payload)` makes one and `RUN_FINISHED.parse(value)` reads one.
    """

    name: str
    topic: str
    payload: type[P]
    version: int = 1

    def new(
        self, key: str, payload: P, *, id: str | None = None, occurred_at: datetime | None = None
    ) -> Event[P]:
        extra: dict[str, Any] = {}
        if id is not None:
            extra["id"] = id
        if occurred_at is not None:
            extra["occurred_at"] = occurred_at
        return Event[self.payload](  # type: ignore[name-defined]
            type=self.name, key=key, version=self.version, payload=payload, **extra
        )

    def parse(self, value: bytes | str) -> Event[P]:
        """The event in a message's value, its payload validated (pydantic's ValidationError if not)."""
        event: Event[P] = Event[self.payload].model_validate_json(value)  # type: ignore[name-defined]
        return event
