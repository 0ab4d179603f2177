"""aiosqlite with one trip to the connection's thread per statement, for the test engine.

aiosqlite runs each sqlite3 call on the connection's own thread, and SQLAlchemy's adapter makes
three or four calls a statement: make a cursor, execute, fetch the rows, close. Each is a hop to
that thread and back (0.03 ms on an idle machine, 0.1-0.2 ms on a busy one): on a small test
database, several times the work of the statement itself. Here the cursor is made, run and drained
in one hop, and closed on the thread without the loop waiting for it. sqlite3 does the same work,
in the same order, on the same thread; only the waiting is gone.
"""

from __future__ import annotations

import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, cast

import aiosqlite
from aiosqlite.context import Result


class Cursor:
    """What SQLAlchemy uses of `aiosqlite.Cursor`. Rows come back with the statement; fetching them
    afterwards reads a buffer, no hop."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # aiosqlite leaves its own queueing function unannotated.
        self._hop = cast(Callable[..., Awaitable[deque[Any]]], conn._execute)
        self._rows: deque[Any] = deque()
        self._arraysize = 1
        self._cursor: sqlite3.Cursor | None = None  # made on the connection's thread, when first used

    def _run(self, method: str, *args: Any) -> deque[Any]:
        if self._cursor is None:
            self._cursor = self._conn._conn.cursor()
            self._cursor.arraysize = self._arraysize
        getattr(self._cursor, method)(*args)
        return deque(self._cursor.fetchall()) if self._cursor.description is not None else deque()

    async def execute(self, sql: str, parameters: Iterable[Any] | None = None) -> Cursor:
        self._rows = await self._hop(self._run, "execute", sql, [] if parameters is None else parameters)
        return self

    async def executemany(self, sql: str, parameters: Iterable[Iterable[Any]]) -> Cursor:
        self._rows = await self._hop(self._run, "executemany", sql, parameters)
        return self

    async def executescript(self, sql_script: str) -> Cursor:
        self._rows = await self._hop(self._run, "executescript", sql_script)
        return self

    async def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    async def fetchmany(self, size: int | None = None) -> Sequence[Any]:
        count = self._arraysize if size is None else size
        return [self._rows.popleft() for _ in range(min(count, len(self._rows)))]

    async def fetchall(self) -> Sequence[Any]:
        taken = list(self._rows)
        self._rows.clear()
        return taken

    async def close(self) -> None:
        self._rows.clear()
        if self._cursor is not None:
            # Queued without a future: the thread closes it before whatever comes next, and the
            # loop does not wait for that.
            self._conn._tx.put_nowait((None, self._cursor.close))

    # Before its first statement the cursor answers what a fresh sqlite3 cursor would.
    @property
    def description(self) -> Any:
        return None if self._cursor is None else self._cursor.description

    @property
    def rowcount(self) -> int:
        return -1 if self._cursor is None else self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return None if self._cursor is None else self._cursor.lastrowid

    @property
    def connection(self) -> sqlite3.Connection:
        return self._conn._conn

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value
        if self._cursor is not None:
            self._cursor.arraysize = value


class Connection(aiosqlite.Connection):
    def cursor(self) -> Result[Cursor]:  # type: ignore[override]
        return Result(self._new_cursor())

    async def _new_cursor(self) -> Cursor:
        return Cursor(self)  # no hop: the sqlite3 cursor is made with the first statement


def connect(database: str, **kwargs: Any) -> Connection:
    """What `aiosqlite.connect` does, with this module's connection class."""

    def connector() -> sqlite3.Connection:
        opened: sqlite3.Connection = sqlite3.connect(database, **kwargs)
        return opened

    connection = Connection(connector, iter_chunk_size=64)
    # As SQLAlchemy does for aiosqlite: a connection a test leaked must not keep the process alive.
    connection._thread.daemon = True
    return connection


# SQLAlchemy's aiosqlite dialect calls this instead of `aiosqlite.connect`, with the arguments it
# computed from the URL (its public `async_creator` would skip those).
CONNECT_ARGS = {"async_creator_fn": connect}
