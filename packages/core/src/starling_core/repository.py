"""A typed repository base (the queries every table needs, written once) and `Stores`, which hands a
service's repositories out on a session for reads or in a transaction for writes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, ClassVar, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from starling_core.db import Database

M = TypeVar("M", bound=DeclarativeBase)
R = TypeVar("R")


class Repository(Generic[M]):
    """Subclass with `model = MyModel`; add the queries that are the table's own."""

    model: ClassVar[type[Any]]

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, ident: Any) -> M | None:
        found: M | None = await self.session.get(self.model, ident)
        return found

    async def add(self, instance: M) -> M:
        self.session.add(instance)
        await self.session.flush()
        return instance

    async def delete(self, instance: M) -> None:
        await self.session.delete(instance)
        await self.session.flush()

    async def scalars(self, statement: Select[M]) -> Sequence[M]:
        return (await self.session.scalars(statement)).all()

    async def count(self) -> int:
        return int(await self.session.scalar(select(func.count()).select_from(self.model)) or 0)

    def select(self) -> Select[M]:
        return select(self.model)


class Stores(Generic[R]):
    """A service's repositories, built by `on(session)`: on a plain session to read, in a transaction
    to write (committed when the block ends, rolled back if it raises).

    A service opens them itself, around its statements only, so that slow work between them (a
    password hash, an outbound call) never holds a transaction, which on SQLite is the process's one
    write turn: `async with self.stores.writing() as users: await users.add(user)`.
    """

    def __init__(self, database: Database, on: Callable[[AsyncSession], R]) -> None:
        self.database = database
        self.on = on

    @asynccontextmanager
    async def reading(self) -> AsyncIterator[R]:
        async with self.database.session() as session:
            yield self.on(session)

    @asynccontextmanager
    async def writing(self) -> AsyncIterator[R]:
        async with self.database.transaction() as session:
            yield self.on(session)
