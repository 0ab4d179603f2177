"""Each test's isolated transaction, on one connection the worker holds for the whole run.

The textbook recipe checks a connection out of the pool for every test, begins, opens a SAVEPOINT
for the session, and at the end rolls back the SAVEPOINT, the transaction and, on check-in, the
connection once more. Every one of those is a round trip (on SQLite, several thread hops each), and
only two of them are needed: BEGIN, and one ROLLBACK that undoes everything, SAVEPOINTs included.
So the worker keeps one connection checked out, and sessions are closed after that ROLLBACK, when
closing them has nothing left to say to the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, AsyncTransaction

from starling_testkit.guards import CheckoutTracker

# SQLAlchemy numbers SAVEPOINTs per connection object (sa_savepoint_1, _2, ...). On a connection
# held for the whole run the names would never repeat, and asyncpg prepares every new statement
# text once more (one more round trip per SAVEPOINT), so the count starts again with each test.
_SAVEPOINT_COUNTER = "_Connection__savepoint_seq"


@dataclass
class TestTransaction:
    connection: AsyncConnection
    transaction: AsyncTransaction
    sessions: list[AsyncSession] = field(default_factory=list)

    __test__ = False  # not a test class, whatever pytest's name-based collection thinks


class WorkerConnection:
    """The worker's one connection, and the outer transaction each test runs inside."""

    def __init__(self, engine: AsyncEngine, tracker: CheckoutTracker) -> None:
        self.engine = engine
        self.tracker = tracker
        self.connection: AsyncConnection | None = None
        self.current: TestTransaction | None = None

    async def begin(self) -> TestTransaction:
        connection = self.connection
        if connection is not None and not _usable(connection):
            await self._discard(connection)
            connection = None
        if connection is None:
            connection = self.connection = await self._connect()
        sync_connection = connection.sync_connection
        if sync_connection is not None and hasattr(sync_connection, _SAVEPOINT_COUNTER):
            setattr(sync_connection, _SAVEPOINT_COUNTER, 0)
        self.current = TestTransaction(connection, await connection.begin())
        return self.current

    def add_session(self, session: AsyncSession) -> None:
        # On a db_connection of a package's own making there is nothing to hand it to: its
        # transaction is that fixture's business, and the session is dropped with the test.
        if self.current is not None and session.bind is self.current.connection:
            self.current.sessions.append(session)

    async def end(self, test: TestTransaction) -> None:
        """Undo everything the test wrote, and leave the connection ready for the next one."""
        self.current = None
        connection = test.connection
        try:
            if test.transaction.is_active:
                await test.transaction.rollback()
        except Exception:
            if not connection.invalidated:
                raise
            # The connection died during the test (SQLAlchemy invalidated it), and the server
            # dropped its transaction with it: there is nothing left to undo.
        finally:
            try:
                # After the ROLLBACK the sessions' SAVEPOINTs are gone; closing them emits nothing.
                for session in test.sessions:
                    await session.close()
            finally:
                # A test that ended the outer transaction and began another, or broke the
                # connection, leaves a state the next test must not inherit: it gets a new one.
                if not _usable(connection) or connection.in_transaction():
                    await self._discard(connection)

    async def close(self) -> None:
        if self.connection is not None:
            await self._discard(self.connection)

    async def _connect(self) -> AsyncConnection:
        connection = await self.engine.connect()
        # Held by the kit on purpose: not a leak of the test during which it was opened.
        self.tracker.exempt(connection)
        return connection

    async def _discard(self, connection: AsyncConnection) -> None:
        if connection is self.connection:
            self.connection = None
        if not connection.closed and not connection.invalidated and not _usable(connection):
            await connection.invalidate()  # its socket is gone: a ROLLBACK on close would only fail
        await connection.close()  # rolls back whatever is open and returns it to the pool


def _usable(connection: AsyncConnection) -> bool:
    """Whether the held connection can start the next test, checked without a round trip.

    The pool's pre-ping would cost one per test; a server that restarted or dropped the backend
    has already closed the socket, which asyncpg notices on its own (SQLite has no server to lose).
    """
    if connection.closed or connection.invalidated:
        return False
    sync_connection = connection.sync_connection
    driver = sync_connection.connection.driver_connection if sync_connection is not None else None
    is_closed = getattr(driver, "is_closed", None)
    return not (callable(is_closed) and is_closed())
