"""The README's examples type-check under `mypy --strict`, against a stand-in for the reader's package.

Every block fenced ```python is checked as a module of its own; a sketch that cannot stand alone is
fenced ```python fragment and is not.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)

# `myproject`, the package the README's examples import: a model, a starling_core app, a bare Starlette
# app and a FastAPI app, each as a team would write it.
MYPROJECT = {
    "__init__.py": "",
    "models.py": """
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base as CoreBase
from starling_core.db import UTCDateTime, new_metadata


class Base(CoreBase):
    __abstract__ = True
    metadata = new_metadata()


class Note(Base):
    __tablename__ = "notes"
    id: Mapped[int] = mapped_column(primary_key=True)
    text: Mapped[str] = mapped_column(String(200))


class Task(Base):
    __tablename__ = "tasks"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
""",
    "app.py": """
from starling_core.app import ServiceApp, create_app as create_service
from starling_core.db import Database
from starling_core.settings import ServiceSettings


class NotesSettings(ServiceSettings):
    service_name: str = "notes"


def create_app(settings: NotesSettings, *, database: Database | None = None) -> ServiceApp:
    return create_service(settings, routes=[], database=database)
""",
    "bare.py": """
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from starlette.applications import Starlette


def create_bare_app(sessionmaker: async_sessionmaker[AsyncSession] | None = None) -> Starlette:
    sessions = sessionmaker or async_sessionmaker(create_async_engine("sqlite+aiosqlite:///notes.db"))
    app = Starlette()
    app.state.sessions = sessions
    return app
""",
    "api.py": """
from collections.abc import AsyncIterator

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

sessions = async_sessionmaker(create_async_engine("sqlite+aiosqlite:///notes.db"))


async def get_session() -> AsyncIterator[AsyncSession]:
    async with sessions() as session:
        yield session


def create_api() -> FastAPI:
    return FastAPI()
""",
}

MYPY_CONFIG = """
[mypy]
strict = True
python_version = 3.11
warn_unreachable = True

[mypy-asgi_lifespan.*,respx.*,asyncpg.*,aiokafka.*]
ignore_missing_imports = True
"""


def test_the_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    blocks = BLOCK.findall(README.read_text())
    assert len(blocks) >= 5, "the README's examples went missing"
    package = tmp_path / "myproject"
    package.mkdir()
    for name, source in MYPROJECT.items():
        (package / name).write_text(source.lstrip())
    examples = []
    for number, block in enumerate(blocks):
        example = tmp_path / f"readme_example_{number}.py"
        example.write_text(block)
        examples.append(str(example))
    (tmp_path / "mypy.ini").write_text(MYPY_CONFIG)
    # A cache that outlives the run: a cold mypy over SQLAlchemy, pydantic and FastAPI takes a while.
    cache = Path(tempfile.gettempdir()) / "starling-testkit-readme-mypy"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(tmp_path / "mypy.ini"), "--cache-dir", str(cache),
         "myproject", *examples],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
