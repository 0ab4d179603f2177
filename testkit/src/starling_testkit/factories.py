"""polyfactory `SQLAlchemyFactory`s persisted through the test's own session, filling real models right.

polyfactory reads a column's SQL type; on real models that is not always enough:

- a timezone-aware column (core's `UTCDateTime`, `DateTime(timezone=True)`) gets an aware UTC time,
  not a naive one that `UTCDateTime` refuses;
- a JSON column gets a value of its mapped annotation (`Mapped[list[str]]` a list of strings), not a
  random dict whatever the model says;
- an `Enum` column gets one of its members or values;
- a many-to-one relationship gets a parent built (and saved with the child) when its foreign key
  cannot be NULL, and is left empty otherwise; collections start empty; a foreign key column is
  never given a random value that would point at no row;
- a column with a default (or a server default) keeps it, and a primary key is the database's to
  assign unless nothing would assign it (a string key without a default gets a value).

polyfactory is imported here only, when a test first asks for `bind_factory` (with faker it takes
~0.45 s to import).
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, TypeVar

from sqlalchemy import JSON, DateTime, Enum, Integer, String, inspect
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped
from sqlalchemy.types import TypeDecorator, TypeEngine

if TYPE_CHECKING:
    from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory

F = TypeVar("F", bound="type[SQLAlchemyFactory[Any]]")


class BindFactory(Protocol):
    """The `bind_factory` fixture: `bind_factory(MyFactory)` is `MyFactory` saving into `db_session`."""

    def __call__(self, factory: F) -> F: ...


class AwareDatetime(datetime):
    """The annotation polyfactory is given for a timezone-aware column; the values are plain datetimes."""


def bind(factory: F, session: AsyncSession) -> F:
    """`factory`, saving with `create_async`/`create_batch_async` into `session` (flushed, not committed:
    the test's transaction holds them), and filling the model's columns as this module says."""
    base = _starling_base()
    # The parents it builds for relationships come from `base` too, so they are filled the same way.
    attributes = {"__async_session__": session, "__base_factory_overrides__": {object: base}}
    bound: F = type(factory.__name__, (factory, base), attributes)  # type: ignore[assignment]
    return bound


@functools.cache
def _starling_base() -> type[SQLAlchemyFactory[Any]]:
    from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory, SQLAlchemyPersistenceMethod
    from polyfactory.utils.types import Frozendict

    class StarlingSQLAlchemyFactory(SQLAlchemyFactory[Any]):
        __is_base_factory__ = True
        __persistence_method__ = SQLAlchemyPersistenceMethod.FLUSH
        __set_foreign_keys__ = False
        __set_relationships__ = True

        @classmethod
        def is_supported_type(cls, value: Any) -> typing.TypeGuard[type[Any]]:
            # Never picked by polyfactory for other factories' models: only the kit's bound ones use it.
            return "__is_base_factory__" not in cls.__dict__ and super().is_supported_type(value)

        @classmethod
        def get_provider_map(cls) -> dict[Any, Callable[[], Any]]:
            return {**super().get_provider_map(), AwareDatetime: lambda: cls.__faker__.date_time(tzinfo=UTC)}

        @classmethod
        def should_column_be_set(cls, column: Any) -> bool:
            if not super().should_column_be_set(column):
                return False
            if column.primary_key:
                # The database assigns integer keys; a key with a default is the model's to make.
                autoincrement = isinstance(column.type, Integer) and column.autoincrement in (True, "auto")
                return not (autoincrement or column.default is not None or column.server_default is not None)
            return column.default is None and column.server_default is None

        @classmethod
        def get_type_from_column(cls, column: Any) -> Any:
            engine = _underlying(column.type)
            annotation: Any
            if column.primary_key and isinstance(engine, String):
                # A key the factory must make: long enough that two never collide (polyfactory's
                # random strings may be a few characters long).
                longest = engine.length or 36
                return Annotated[str, Frozendict({"min_length": min(16, longest), "max_length": longest})]
            if isinstance(engine, DateTime) and engine.timezone:
                annotation = AwareDatetime
            elif isinstance(engine, Enum):
                annotation = engine.enum_class or Literal[tuple(engine.enums)]
            elif isinstance(engine, JSON):
                annotation = _mapped_annotation(cls.__model__, column.key) or dict[str, str]
            else:
                return super().get_type_from_column(column)
            return annotation | None if column.nullable else annotation

        @classmethod
        def get_model_fields(cls) -> list[Any]:
            mapper = inspect(cls.__model__)
            kept = []
            for field in super().get_model_fields():
                relationship = mapper.relationships.get(field.name)
                if relationship is None:
                    kept.append(field)
                elif not relationship.uselist and any(not c.nullable for c in relationship.local_columns):
                    kept.append(field)  # a parent the child cannot be saved without
            return kept

    return StarlingSQLAlchemyFactory


def _underlying(engine: TypeEngine[Any]) -> TypeEngine[Any]:
    while isinstance(engine, TypeDecorator):
        engine = engine.impl if isinstance(engine.impl, TypeEngine) else engine.impl()
    return engine


def _mapped_annotation(model: type[Any], attribute: str) -> Any:
    """What `attribute: Mapped[X]` says X is, when the model's annotations can be read."""
    for klass in model.__mro__:
        try:
            hints = typing.get_type_hints(klass)
        except Exception:  # noqa: S112 - annotations that cannot be resolved just give no hint
            continue
        hint = hints.get(attribute)
        if typing.get_origin(hint) is Mapped:
            return typing.get_args(hint)[0]
    return None
