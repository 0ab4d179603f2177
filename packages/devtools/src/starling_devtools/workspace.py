"""The workspace as a graph: its members, and which members depend on which.

Everything here is read from the `pyproject.toml` files, the same files uv resolves, so the graph cannot
drift from what is installed: a member depends on another when it names it in its dependencies or in
one of its dependency groups (a suite that uses the test kit depends on the kit).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


@dataclass(frozen=True)
class Member:
    name: str  # the directory name, used in session names: tests(users)
    path: Path  # relative to the workspace root
    distribution: str  # the project name: starling-users
    depends_on: frozenset[str]  # names of the members it depends on, directly

    @property
    def is_service(self) -> bool:
        return self.path.parent.name == "services"


def _requirement_names(config: Mapping[str, Any]) -> set[str]:
    requirements: list[str] = list(config.get("project", {}).get("dependencies", []))
    for group in config.get("dependency-groups", {}).values():
        # a group may include another group ({include-group = ...}); only strings name packages
        requirements.extend(item for item in group if isinstance(item, str))
    return {canonicalize_name(Requirement(item).name) for item in requirements}


def load(root: Path) -> dict[str, Member]:
    """Every member under `[tool.uv.workspace] members`, by name, in a stable order."""
    config = tomllib.loads((root / "pyproject.toml").read_text())
    paths: list[Path] = []
    for pattern in config["tool"]["uv"]["workspace"]["members"]:
        paths.extend(path for path in sorted(root.glob(pattern)) if (path / "pyproject.toml").is_file())
    configs = {path: tomllib.loads((path / "pyproject.toml").read_text()) for path in paths}
    by_distribution: dict[str, str] = {
        canonicalize_name(c["project"]["name"]): path.name for path, c in configs.items()
    }
    members: dict[str, Member] = {}
    for path, member_config in configs.items():
        wanted = _requirement_names(member_config)
        own = canonicalize_name(member_config["project"]["name"])
        members[path.name] = Member(
            name=path.name,
            path=path.relative_to(root),
            distribution=member_config["project"]["name"],
            depends_on=frozenset(by_distribution[d] for d in wanted if d in by_distribution and d != own),
        )
    return members


def dependents(members: Mapping[str, Member], names: Iterable[str]) -> set[str]:
    """`names` and every member that depends on one of them, directly or through others."""
    found = set(names)
    frontier = list(found)
    while frontier:
        current = frontier.pop()
        for member in members.values():
            if current in member.depends_on and member.name not in found:
                found.add(member.name)
                frontier.append(member.name)
    return found


def owner(members: Mapping[str, Member], file: str) -> str | None:
    """The member a repository-relative path belongs to, or None for a file outside every member."""
    parts = Path(file).parts
    for member in members.values():
        if parts[: len(member.path.parts)] == member.path.parts:
            return member.name
    return None
