"""Which services the workspace has and where each is served, read from the workspace as nox reads it.

A service is a member under `services/`; its port is its `[tool.starling.serve] port` (`nox -s new`
writes one). That port less `DEVELOPMENT_BASE` is its offset: a tool places the whole set at its own
base plus each offset, or on free ports, so a service added under `services/` is run by every tool
with no table to edit.
"""

from __future__ import annotations

import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starling_devtools import workspace

DEVELOPMENT_BASE = 8000


@dataclass(frozen=True)
class Discovered:
    """A service of the workspace: its name, its default port and its source folder."""

    name: str
    port: int
    source: Path  # its `src` folder, put on PYTHONPATH so that a service not installed yet runs too

    @property
    def offset(self) -> int:
        return self.port - DEVELOPMENT_BASE


def declared_port(root: Path, member: workspace.Member) -> int | None:
    config = tomllib.loads((root / member.path / "pyproject.toml").read_text())
    port = config.get("tool", {}).get("starling", {}).get("serve", {}).get("port")
    return int(port) if port else None


def discover(root: Path) -> dict[str, Discovered]:
    """Every service of the workspace at `root`, by name, sorted; one without a port gets 8100 and up."""
    members = [member for member in workspace.load(root).values() if member.is_service]
    found = {}
    for index, member in enumerate(sorted(members, key=lambda m: m.name)):
        port = declared_port(root, member) or DEVELOPMENT_BASE + 100 + index
        found[member.name] = Discovered(member.name, port, (root / member.path / "src").resolve())
    return found


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def assign_ports(services: Mapping[str, Discovered], base: int | None) -> dict[str, int]:
    """Each service's port: its own (`base` None), a free one (`base` 0), or `base` + its offset."""
    if base is None:
        return {name: service.port for name, service in services.items()}
    if base == 0:
        return {name: free_port() for name in services}
    return {name: base + service.offset for name, service in services.items()}
