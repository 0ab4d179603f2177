"""`starling-migrate`: a first revision generated from the models, applied, and then nothing left to do."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from starling_core import schema
from starling_core.migrate import main

MODELS = """
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from starling_core.db import Base, UTCDateTime, new_metadata


class ProbeBase(Base):
    __abstract__ = True
    metadata = new_metadata()


class Widget(ProbeBase):
    __tablename__ = "widgets"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
"""

SETTINGS = """
from pydantic_settings import SettingsConfigDict

from starling_core.settings import ServiceSettings


class ProbeSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_PROBE_")
    service_name: str = "probe"
"""


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    package = tmp_path / "src" / "starling_probe"
    (package / "migrations" / "versions").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models.py").write_text(textwrap.dedent(MODELS))
    (package / "settings.py").write_text(textwrap.dedent(SETTINGS))
    monkeypatch.syspath_prepend(str(tmp_path / "src"))
    monkeypatch.setenv("STARLING_PROBE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/probe.db")
    yield package
    for name in [name for name in sys.modules if name.startswith("starling_probe")]:
        del sys.modules[name]


def test_a_first_revision_is_generated_applied_and_then_nothing_is_left(
    service: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["probe", "revision", "-m", "widgets"]) == 0
    (first,) = (service / "migrations" / "versions").glob("*.py")
    assert first.name == "0001_widgets.py"
    assert "op.create_table(" in first.read_text()
    # core's column type as the column it is stored in: the file imports nothing of the application
    # (quotes as Alembic writes them, or as ruff formats them where ruff is installed)
    written = first.read_text().replace("'", '"')
    assert 'sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)' in written
    assert 'revision = "0001"' in first.read_text()

    assert main(["probe", "upgrade"]) == 0
    engine = create_engine(f"sqlite:///{service.parents[1]}/probe.db")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    # core's tables beside its own
    assert tables == {"alembic_version", "widgets", *schema.metadata.tables}

    assert main(["probe", "revision", "-m", "nothing"]) == 0
    second = service / "migrations" / "versions" / "0002_nothing.py"
    assert 'down_revision = "0001"' in second.read_text()
    assert "create_table" not in second.read_text()  # core's table is not the service's to create


def test_an_unknown_service_is_a_clear_error() -> None:
    with pytest.raises(SystemExit, match="no package 'starling_nowhere'"):
        main(["nowhere", "upgrade"])
