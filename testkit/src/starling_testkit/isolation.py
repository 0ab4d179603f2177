"""Each test's isolated transaction: BEGIN when it starts, one ROLLBACK when it ends.

The textbook recipe checks a connection out with a pre-ping, begins, opens a SAVEPOINT for the
session, and at the end rolls back the SAVEPOINT, the transaction and, on check-in, the connection
once more. Only two of those round trips are needed: BEGIN, and one ROLLBACK that undoes everything,
SAVEPOINTs included. So the kit's engine checks connections out without a pre-ping and returns them
without a reset (both plain pool settings), and sessions are closed after the ROLLBACK, when closing
them has nothing left to say to the database.

A connection is checked out for each test, rather than held for the run: SQLAlchemy numbers
SAVEPOINTs per connection object (sa_savepoint_1, _2, ...), so each test's names start again at 1,
and asyncpg, which prepares every new statement text once more, reuses the prepared ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, AsyncTransaction

from starling_testkit.guards import CheckoutTracker

# The kit's engine: no round trip at checkout (pre-ping) nor at check-in (reset). A connection whose
# server dropped it is seen without a round trip (see `_usable`); one returned inside a transaction
# has had it rolled back by its `close()`, which is how the kit returns them.
ENGINE_OPTIONS = {"pool_pre_ping": False, "pool_reset_on_return": None}


@dataclass
class TestTransaction:
    connection: AsyncConnection
    transaction: AsyncTransaction
    sessions: list[AsyncSession] = field(default_factory=list)

    __test__ = False  # not a test class, whatever pytest's name-based collection thinks


class Isolation:
    """Hands each test a connection inside an outer transaction, and undoes it afterwards."""

    def __init__(self, engine: AsyncEngine, tracker: CheckoutTracker | None = None) -> None:
        self.engine = engine
        self.tracker = tracker
        self.current: TestTransaction | None = None

    async def begin(self) -> TestTransaction:
        connection = await self._connect()
        if not _usable(connection):
            await connection.invalidate()  # its socket is gone: the pool must not hand it out again
            await connection.close()
            connection = await self._connect()
        self.current = TestTransaction(connection, await connection.begin())
        return self.current

    async def _connect(self) -> AsyncConnection:
        if self.tracker is None:
            return await self.engine.connect()
        # The kit's, returned at teardown: not the test's leak, and not worth finding where it came from.
        self.tracker.kit_checkout = True
        try:
            return await self.engine.connect()
        finally:
            self.tracker.kit_checkout = False

    def add_session(self, session: AsyncSession) -> None:
        # On a db_connection of a package's own making there is nothing to hand it to: its
        # transaction is that fixture's business, and the session is dropped with the test.
        if self.current is not None and session.bind is self.current.connection:
            self.current.sessions.append(session)

    async def end(self, test: TestTransaction) -> None:
        """Undo everything the test wrote, and return the connection."""
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
                # Rolls back a transaction the test began after ending the outer one, if any.
                await connection.close()


def _usable(connection: AsyncConnection) -> bool:
    """Whether a connection from the pool can start the test, checked without a round trip.

    A pre-ping would cost one per test; a server that restarted or dropped the backend has already
    closed the socket, which asyncpg notices on its own (SQLite has no server to lose).
    """
    if connection.closed or connection.invalidated:
        return False
    sync_connection = connection.sync_connection
    driver = sync_connection.connection.driver_connection if sync_connection is not None else None
    is_closed = getattr(driver, "is_closed", None)
    return not (callable(is_closed) and is_closed())
