"""The inbox: which events a consumer has handled, written in the handler's own transaction.

`claim` inserts (consumer, event id) or finds it there: a redelivered event, however often it comes,
finds its row and is skipped, and a handler that fails rolls its row back with its writes. `claim_many`
does it for a batch in one statement a thousand events (`INSERT ... ON CONFLICT DO NOTHING RETURNING`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from starling_core.schema import inbox_events

_table = inbox_events
# rows a statement: four parameters each, well inside asyncpg's 32,767 and SQLite's 32,766
CHUNK = 1000


class Inbox:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim(self, consumer: str, event_id: str, topic: str) -> bool:
        """True the first time `consumer` handles `event_id` (in this transaction), False after."""
        return event_id in await self.claim_many(consumer, [(event_id, topic)])

    async def claim_many(self, consumer: str, events: Sequence[tuple[str, str]]) -> set[str]:
        """The ids among `events` (event id, topic) that `consumer` handles for the first time."""
        insert = postgresql.insert if self.session.get_bind().dialect.name == "postgresql" else sqlite.insert
        now, claimed = datetime.now(UTC), set[str]()
        for start in range(0, len(events), CHUNK):
            rows = [
                {"consumer": consumer, "event_id": event_id, "topic": topic, "handled_at": now}
                for event_id, topic in events[start : start + CHUNK]
            ]
            statement = (
                insert(_table)
                .values(rows)
                .on_conflict_do_nothing(index_elements=[_table.c.consumer, _table.c.event_id])
                .returning(_table.c.event_id)
            )
            claimed.update((await self.session.scalars(statement)).all())
        return claimed

    async def purge(self, before: datetime) -> int:
        """Forget events handled before `before` (older than any redelivery can be)."""
        result = await self.session.execute(delete(_table).where(_table.c.handled_at < before))
        return int(getattr(result, "rowcount", 0) or 0)
