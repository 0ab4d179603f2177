from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The Starling checkout these tests run in (its noxfile, workflow and members are the subject)."""
    return Path(__file__).resolve().parents[3]
