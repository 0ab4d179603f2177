"""The relay: delivers the outbox to the broker, at least once and in order, and marks what it sent.

Each pass reads the oldest unsent events (a plain read: no transaction is held while the broker is
waited on, which on SQLite would be the process's one write turn), publishes them, waits for every
acknowledgement, then marks them sent. A relay that dies between the send and the mark sends them
again next time; consumers' inboxes make the copies harmless.

Order per key needs one relay at a time per database: on PostgreSQL a pass runs only while its
process holds an advisory lock (released by the server if the process dies), so several processes or
replicas can all run a relay and one delivers. On SQLite (one machine) the turn is a lock on a file
beside the database, so several `serve` processes on one file take turns too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from starling_core.db import Database
from starling_core.events.broker import Broker, Publisher
from starling_core.events.inbox import Inbox
from starling_core.events.outbox import Outbox, wake_on_commit

log = logging.getLogger("starling.events")

# pg_advisory_lock key of "the outbox relay" ("STARLING" in ASCII); one outbox per database.
RELAY_LOCK = 0x535441524C494E47

Sleep = Callable[[float], Awaitable[None]]


@dataclass
class RelayStatus:
    state: str = "starting"  # delivering, standby (another process holds the turn), unreachable
    sent: int = 0
    last_error: str | None = None  # the exception's type only, as a consumer's (see ConsumerStatus)
    last_sent_at: datetime | None = field(default=None)


class Relay:
    def __init__(
        self,
        database: Database,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
        max_backoff: float = 30.0,
        keep_sent: timedelta = timedelta(days=1),
        keep_handled: timedelta = timedelta(days=14),
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.database = database
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.max_backoff = max_backoff
        self.keep_sent = keep_sent
        self.keep_handled = keep_handled
        self.sleep = sleep
        self.status = RelayStatus()
        self._wake = asyncio.Event()
        wake_on_commit(self._wake)

    async def deliver_once(self, publisher: Publisher) -> int:
        """One pass: send up to `batch_size` of the oldest unsent events and mark them; how many."""
        async with self._turn() as mine:
            if not mine:
                self.status.state = "standby"
                return 0
            async with self.database.session() as session:
                pending = await Outbox(session).unsent(self.batch_size)
            if not pending:
                return 0
            ids = [row.id for row in pending]
            try:
                await publisher.publish([row.message() for row in pending])
            except Exception as exc:
                async with self.database.transaction() as session:
                    await Outbox(session).record_failure(ids, f"{type(exc).__name__}: {exc}")
                raise
            now = datetime.now(UTC)
            async with self.database.transaction() as session:
                await Outbox(session).mark_sent(ids, now)
            self.status.state = "delivering"
            self.status.sent += len(ids)
            self.status.last_sent_at = now
            return len(ids)

    async def drain(self, publisher: Publisher) -> int:
        """Deliver until nothing is left (what a test or a shutdown wants); how many were sent."""
        total = 0
        while sent := await self.deliver_once(publisher):
            total += sent
        return total

    async def run(self, broker: Broker) -> None:
        """Deliver for as long as the task runs: reconnecting with backoff while the broker is away."""
        backoff = self.poll_interval
        purged = datetime.min.replace(tzinfo=UTC)
        while True:
            try:
                async with broker.publisher() as publisher:
                    backoff = self.poll_interval
                    while True:
                        self._wake.clear()  # before reading: a commit from here on wakes the wait
                        sent = await self.deliver_once(publisher)
                        self.status.last_error = None
                        if datetime.now(UTC) - purged > timedelta(hours=1):
                            purged = datetime.now(UTC)
                            await self.purge(purged)
                        if sent < self.batch_size:
                            await self._idle()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the relay outlives any failure: the events wait in the outbox
                self.status.state = "unreachable"
                self.status.last_error = type(exc).__name__  # `/health` is public: the text goes to the log
                log.warning("events: relay paused %.1f s: %s: %s", backoff, type(exc).__name__, exc)
                await self.sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)

    async def purge(self, now: datetime) -> None:
        async with self.database.transaction() as session:
            await Outbox(session).purge_sent(now - self.keep_sent)
            await Inbox(session).purge(now - self.keep_handled)

    async def _idle(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.poll_interval):
                await self._wake.wait()

    @asynccontextmanager
    async def _turn(self) -> AsyncIterator[bool]:
        if self.database.engine.dialect.name != "postgresql":
            with _file_turn(self.database.engine.url.database) as mine:
                yield mine
            return
        async with self.database.engine.connect() as connection:
            mine = bool(await connection.scalar(text(f"SELECT pg_try_advisory_lock({RELAY_LOCK})")))
            try:
                yield mine
            finally:
                if mine:
                    await connection.execute(text(f"SELECT pg_advisory_unlock({RELAY_LOCK})"))


@contextlib.contextmanager
def _file_turn(database: str | None) -> Iterator[bool]:
    """SQLite's turn: an exclusive lock on a file beside the database, which the system drops when the
    process that held it dies (several `serve` processes may share one SQLite file)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        yield True
        return
    with open(f"{database}.relay-lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
