"""Factories persist through the test's session, with keys from the database, and roll back."""

from __future__ import annotations

import pytest

from .conftest import dedent


def test_bound_factory_persists_in_the_test_transaction(project: pytest.Pytester, backend: str) -> None:
    project.makepyfile(
        test_factories=dedent(
            """
            from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
            from sqlalchemy import func, select
            from conftest import Note

            class NoteFactory(SQLAlchemyFactory[Note]):
                text = "from a factory"

            async def test_1_create(bind_factory, client):
                notes = bind_factory(NoteFactory)
                first = await notes.create_async()
                more = await notes.create_batch_async(2)
                assert first.id is not None and first.text == "from a factory"
                assert sorted(n.id for n in [first, *more]) == [first.id, first.id + 1, first.id + 2]
                assert (await client.get("/notes")).json() == {"count": 3}

            async def test_2_rolled_back(db_session):
                assert await db_session.scalar(select(func.count()).select_from(Note)) == 0
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend).assert_outcomes(passed=2)


def test_real_models_are_filled_right(project: pytest.Pytester, backend: str) -> None:
    # Aware UTC times (core's UTCDateTime refuses naive ones), JSON of the mapped annotation, enums,
    # a parent built for a required many-to-one, a string key with no default, defaults kept.
    project.makepyfile(
        test_models=dedent(
            """
            import enum
            from datetime import UTC, datetime
            from typing import Any

            from polyfactory.factories.sqlalchemy_factory import SQLAlchemyFactory
            from sqlalchemy import JSON, Enum, ForeignKey, String, func, select
            from sqlalchemy.orm import Mapped, mapped_column, relationship
            from starling_core.db import UTCDateTime

            from conftest import NoteBase


            class Status(enum.Enum):
                queued = "queued"
                done = "done"


            class Owner(NoteBase):
                __tablename__ = "owners"
                id: Mapped[int] = mapped_column(primary_key=True)
                name: Mapped[str] = mapped_column(String(40))
                joined_at: Mapped[datetime] = mapped_column(UTCDateTime())
                tasks: Mapped[list["Task"]] = relationship(back_populates="owner")


            class Task(NoteBase):
                __tablename__ = "tasks"
                id: Mapped[str] = mapped_column(String(36), primary_key=True)
                tags: Mapped[list[str]] = mapped_column(JSON)
                config: Mapped[dict[str, Any]] = mapped_column(JSON)
                status: Mapped[Status] = mapped_column(Enum(Status))
                size: Mapped[str] = mapped_column(Enum("s", "m", "l", name="task_size"))
                kind: Mapped[str] = mapped_column(String(10), default="plain")
                created_at: Mapped[datetime] = mapped_column(UTCDateTime())
                finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
                owner_id: Mapped[int] = mapped_column(ForeignKey("owners.id"))
                owner: Mapped[Owner] = relationship(back_populates="tasks")


            class TaskFactory(SQLAlchemyFactory[Task]): ...


            async def test_a_real_model(bind_factory, db_session):
                tasks = await bind_factory(TaskFactory).create_batch_async(5)
                for task in tasks:
                    assert task.created_at.tzinfo is not None
                    assert isinstance(task.tags, list) and all(isinstance(t, str) for t in task.tags)
                    assert isinstance(task.config, dict)
                    assert isinstance(task.status, Status) and task.size in {"s", "m", "l"}
                    assert task.kind == "plain" and task.id
                owners = await db_session.scalar(select(func.count()).select_from(Owner))
                assert owners == 5  # one parent each, saved with its child
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider", "--db", backend).assert_outcomes(passed=1)
