"""The architecture rules `nox -s lint` checks with import-linter, built from the workspace's members.

The contracts are written for whatever members exist, so a new service is held to them with no edit:

- the shared packages (core, the kit, the tools) import no service;
- services never import each other: they talk over HTTP (and events) only;
- in every service, `routes.py` and `service.py` import nothing from SQLAlchemy themselves: SQL is built in
  `repository.py` alone (`models.py` declares the tables), and driver errors are seen there only;
- the throwaway servers' starters import neither pytest nor the kit nor core: the tools install them
  without a test runner.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from importlinter.cli import lint_imports

from starling_devtools import workspace

# The modules of a service that may not import SQLAlchemy directly.
NO_SQL = ("routes", "service")
# Shared packages installed without the kit, and what they may therefore not import.
STANDALONE = {"starling_servers": ("pytest", "starling_testkit", "starling_core")}


def packages(root: Path, member: workspace.Member) -> dict[str, Path]:
    """The import packages under a member's `src/`, by name, with their folders."""
    source = root / member.path / "src"
    return {path.parent.name: path.parent for path in sorted(source.glob("*/__init__.py"))}


def forbidden(key: str, name: str, sources: list[str], modules: list[str], *extra: str) -> list[str]:
    """One import-linter `forbidden` contract: `sources` import none of `modules`."""
    return [
        f"[importlinter:contract:{key}]",
        f"name = {name}",
        "type = forbidden",
        "source_modules =",
        *(f"    {source}" for source in sources),
        "forbidden_modules =",
        *(f"    {module}" for module in modules),
        *extra,
        "",
    ]


def contracts(root: Path, members: Mapping[str, workspace.Member]) -> str:
    """The import-linter configuration (INI) for the workspace at `root`."""
    found = {member.name: packages(root, member) for member in members.values()}
    services = [name for member in members.values() if member.is_service for name in found[member.name]]
    shared = [name for member in members.values() if not member.is_service for name in found[member.name]]
    folders = {name: folder for by_name in found.values() for name, folder in by_name.items()}
    lines = ["[importlinter]", "root_packages =", *(f"    {name}" for name in shared + services)]
    lines += ["include_external_packages = True", ""]
    if services:
        name = "core, the kit and the tools import no service"
        lines += forbidden("shared-code-imports-no-service", name, shared, services)
    if len(services) > 1:
        lines += [
            "[importlinter:contract:services-are-independent]",
            "name = services never import each other",
            "type = independence",
            "modules =",
            *(f"    {name}" for name in services),
            "",
        ]
    for package, modules in STANDALONE.items():
        if package in folders:
            name = f"{package} imports neither pytest nor the kit nor core (the tools install it alone)"
            lines += forbidden(f"{package}-stands-alone", name, [package], list(modules))
    layered = [
        f"{name}.{module}"
        for name in services
        for module in NO_SQL
        if (folders[name] / f"{module}.py").is_file()
    ]
    if layered:
        name = "routes and services import nothing from SQLAlchemy (repository.py builds the SQL)"
        # through models.py a service reaches SQLAlchemy's ORM, which is what models are for
        allow = "allow_indirect_imports = True"
        lines += forbidden("only-repositories-build-sql", name, layered, ["sqlalchemy"], allow)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check the workspace's architecture rules (import-linter).")
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--show", action="store_true", help="print the contracts instead of checking them")
    args = parser.parse_args(argv)
    root = args.root.resolve()
    members = workspace.load(root)
    config = contracts(root, members)
    if args.show:
        print(config)
        return 0
    # The members need not be installed: their sources are found on the path, as they are laid out.
    sys.path[:0] = [str(root / member.path / "src") for member in members.values()]
    with tempfile.NamedTemporaryFile("w", suffix=".importlinter", delete=False) as file:
        file.write(config)
    try:
        return lint_imports(config_filename=file.name, no_cache=True)
    finally:
        Path(file.name).unlink()


if __name__ == "__main__":
    sys.exit(main())
