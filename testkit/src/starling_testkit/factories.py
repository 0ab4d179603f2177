"""polyfactory `SQLAlchemyFactory`s persisted through the test's own session."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
from sqlalchemy.ext.asyncio import AsyncSession

F = TypeVar("F", bound=type[SQLAlchemyFactory[Any]])


class BindFactory(Protocol):
    def __call__(self, factory: F) -> F: ...


def bind(factory: F, session: AsyncSession) -> F:
    """`factory`, saving with `create_async`/`create_batch_async` into `session`.

    Keys are the database's to assign (autoincrement, server defaults), not random values that could
    collide with rows the code under test inserts.
    """
    attributes = {"__async_session__": session, "__set_primary_key__": False}
    bound: F = type(factory.__name__, (factory,), attributes)  # type: ignore[assignment]
    return bound
