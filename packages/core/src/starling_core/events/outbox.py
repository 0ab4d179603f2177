"""The outbox: events written in the same transaction as the change they announce.

A service's repository layer adds an event on the session of its write transaction
(`await Outbox(session).add(RUN_FINISHED, key=run.run_id, payload=...)`), so the event exists exactly
when the write committed; the relay (`relay.py`) later sends what is unsent, oldest first, and marks it.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import delete, event, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from starling_core.events.broker import Message
from starling_core.events.envelope import Event, EventType
from starling_core.schema import outbox_events

P = TypeVar("P")

_table = outbox_events
_PENDING = (_table.c.id, _table.c.event_id, _table.c.topic, _table.c.key, _table.c.type, _table.c.envelope)

# Relays waiting for new rows in this process: `Outbox.add` wakes them when its transaction commits,
# so an event leaves within milliseconds instead of at the next poll.
_waiting: weakref.WeakSet[asyncio.Event] = weakref.WeakSet()


def wake_on_commit(signal: asyncio.Event) -> None:
    _waiting.add(signal)


def _committed(session: Session) -> None:
    for signal in list(_waiting):
        signal.set()


@dataclass(frozen=True)
class Pending:
    """An unsent row, as the relay reads it."""

    id: int
    event_id: str
    topic: str
    key: str
    type: str
    envelope: str

    def message(self) -> Message:
        return Message(self.topic, self.key, self.envelope.encode(), (("type", self.type.encode()),))


class Outbox:
    """The outbox on one session: a service adds events; the relay reads and marks them."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self, kind: EventType[P], *, key: str, payload: P, occurred_at: datetime | None = None
    ) -> Event[P]:
        """Write a `kind` event in the session's transaction; it is sent once that commits."""
        created = kind.new(key, payload, occurred_at=occurred_at)
        await self.add_event(kind.topic, created)
        return created

    async def add_event(self, topic: str, created: Event[Any]) -> None:
        """Write an event made elsewhere (`Event(...)` or `EventType.new`) to go out on `topic`."""
        await self.session.execute(
            insert(_table).values(
                event_id=created.id,
                topic=topic,
                key=created.key,
                type=created.type,
                envelope=created.model_dump_json(),
                created_at=datetime.now(UTC),
            )
        )
        sync_session = self.session.sync_session
        if not event.contains(sync_session, "after_commit", _committed):
            event.listen(sync_session, "after_commit", _committed)

    async def unsent(self, limit: int) -> list[Pending]:
        statement = select(*_PENDING).where(_table.c.sent_at.is_(None)).order_by(_table.c.id).limit(limit)
        return [Pending(*row) for row in await self.session.execute(statement)]

    async def written(self, topic: str | None = None) -> list[Pending]:
        """Every event still kept (sent or not), oldest first: what tests read as "published"."""
        statement = select(*_PENDING).order_by(_table.c.id)
        if topic is not None:
            statement = statement.where(_table.c.topic == topic)
        return [Pending(*row) for row in await self.session.execute(statement)]

    async def mark_sent(self, ids: Sequence[int], at: datetime) -> None:
        await self.session.execute(update(_table).where(_table.c.id.in_(ids)).values(sent_at=at))

    async def record_failure(self, ids: Sequence[int], error: str) -> None:
        await self.session.execute(
            update(_table)
            .where(_table.c.id.in_(ids))
            .values(attempts=_table.c.attempts + 1, last_error=error[:500])
        )

    async def depth(self) -> tuple[int, datetime | None]:
        """How many events wait to be sent, and since when the oldest has."""
        row = (
            await self.session.execute(
                select(func.count(), func.min(_table.c.created_at)).where(_table.c.sent_at.is_(None))
            )
        ).one()
        oldest: datetime | None = row[1]
        return int(row[0]), oldest

    async def purge_sent(self, before: datetime) -> int:
        """Forget events sent before `before`; returns how many."""
        result = await self.session.execute(
            delete(_table).where(_table.c.sent_at.is_not(None), _table.c.sent_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)
