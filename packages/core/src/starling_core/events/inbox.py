"""The inbox: which events a consumer has handled, written in the handler's own transaction.

`claim` inserts (consumer, event id) or finds it there: a redelivered event, however often it comes,
finds its row and is skipped, and a handler that fails rolls its row back with its writes.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core.schema import inbox_events

_table = inbox_events


class Inbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, consumer: str, event_id: str, topic: str) -> bool:
        """True the first time `consumer` handles `event_id` (in this transaction), False after."""
        insert = postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert
        result = await self.session.execute(
            insert(_table)
            .values(consumer=consumer, event_id=event_id, topic=topic, handled_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=[_table.c.consumer, _table.c.event_id])
        )
        return bool(getattr(result, "rowcount", 0))

    async def purge(self, before: datetime) -> int:
        """Forget events handled before `before` (older than any redelivery can be)."""
        result = await self.session.execute(delete(_table).where(_table.c.handled_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
