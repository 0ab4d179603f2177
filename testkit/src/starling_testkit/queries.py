"""`assert_max_queries(n)`: fail when a block runs more SQL statements than it should (N+1 catcher)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

# Transaction control is the harness's own bookkeeping (each request's SAVEPOINT), not the code's queries.
_TRANSACTION_CONTROL = re.compile(r"^\s*(BEGIN|COMMIT|ROLLBACK|SAVEPOINT|RELEASE)\b", re.IGNORECASE)


class MaxQueries(Protocol):
    """The `assert_max_queries` fixture: `with assert_max_queries(3) as seen: ...`, `seen` the statements."""

    def __call__(self, limit: int) -> AbstractContextManager[list[str]]: ...


@contextmanager
def max_queries(engine: AsyncEngine, limit: int) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(
        connection: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        if not _TRANSACTION_CONTROL.match(statement):
            statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
    if len(statements) > limit:
        listing = "\n".join(f"  {n}. {' '.join(sql.split())}" for n, sql in enumerate(statements, 1))
        pytest.fail(f"expected at most {limit} queries, ran {len(statements)}:\n{listing}", pytrace=False)
