"""`starling-migrate`: a service's migrations as commands.

    starling-migrate users upgrade                      # the service's database (its settings' URL)
    starling-migrate users upgrade --url postgresql+asyncpg://...
    starling-migrate users revision -m "add nickname"   # a new revision, generated from the models
    starling-migrate users history

A service is found by its import package, `starling_<service>` (or the package's own name): its history
in `<package>/migrations/versions/`, its tables in the declarative base of `<package>/models.py`, and
its database URL in the settings class of `<package>/settings.py` (so `STARLING_<SERVICE>_DATABASE_URL`
is honoured). `revision` compares the models with a scratch SQLite database brought to the current heads,
unless `--url` names a database to compare with, and numbers the file after the last one (`0004_...`).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import importlib.util
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData

from starling_core.db import Base, Database
from starling_core.migrations import alembic_config, upgrade
from starling_core.settings import ServiceSettings


@dataclass(frozen=True)
class Service:
    package: str
    migrations: Path  # holds versions/
    metadata: MetaData
    database_url: str

    @property
    def versions(self) -> Path:
        return self.migrations / "versions"


def find(name: str) -> Service:
    """The service `name` (`users` or `starling_users`), from its package's conventional modules."""
    package = name if name.startswith("starling_") else f"starling_{name}"
    try:
        root = importlib.import_module(package)
    except ModuleNotFoundError:
        raise SystemExit(f"starling-migrate: no package {package!r} is installed") from None
    assert root.__file__ is not None
    migrations = Path(root.__file__).parent / "migrations"
    if not (migrations / "versions").is_dir():
        raise SystemExit(f"starling-migrate: {package} has no migrations/versions/ folder")
    return Service(
        package, migrations, _metadata(importlib.import_module(f"{package}.models")), _url(package)
    )


def _metadata(models: ModuleType) -> MetaData:
    found = {
        id(value.metadata): value.metadata
        for value in vars(models).values()
        if isinstance(value, type) and issubclass(value, Base) and value.metadata is not Base.metadata
    }
    if len(found) != 1:
        raise SystemExit(f"starling-migrate: {models.__name__} should declare one base with its own metadata")
    return next(iter(found.values()))


def _url(package: str) -> str:
    module = importlib.import_module(f"{package}.settings")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, ServiceSettings)
        and value.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise SystemExit(f"starling-migrate: {module.__name__} should define one ServiceSettings class")
    return classes[0]().database_url


async def _upgrade(url: str, migrations: Path) -> None:
    database = Database.from_url(url)
    try:
        await upgrade(database, migrations)
    finally:
        await database.dispose()


def revision(service: Service, message: str, url: str | None = None) -> Path:
    """Write the revision that brings the schema from the current heads to the models; its path."""
    with tempfile.TemporaryDirectory(prefix="starling-migrate-") as scratch:
        compared = url or f"sqlite+aiosqlite:///{scratch}/heads.db"
        if url is None:
            asyncio.run(_upgrade(compared, service.migrations))
        config = alembic_config(service.migrations, compared, service.metadata)
        if importlib.util.find_spec("ruff") is not None:
            # the new file passes `nox -s lint` as written: unused imports dropped, then formatted
            _post_write(config, ruff_fix="check --fix --quiet", ruff_format="format --quiet")
        script = ScriptDirectory.from_config(config)
        own = [
            head
            for head in script.get_heads()
            if Path(script.get_revision(head).path).parent == service.versions
        ]
        number = len(list(service.versions.glob("*.py"))) + 1
        written = command.revision(
            config,
            message=message,
            autogenerate=True,
            head=own[0] if own else "base",
            version_path=str(service.versions),
            rev_id=f"{number:04d}",
        )
    assert written is not None
    assert not isinstance(written, list)
    return Path(written.path)


def _post_write(config: Config, **hooks: str) -> None:
    config.set_section_option("post_write_hooks", "hooks", ", ".join(hooks))
    for name, options in hooks.items():
        config.set_section_option("post_write_hooks", f"{name}.type", "module")
        config.set_section_option("post_write_hooks", f"{name}.module", "ruff")
        config.set_section_option(
            "post_write_hooks", f"{name}.options", f"{options} REVISION_SCRIPT_FILENAME"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="starling-migrate", description=__doc__.splitlines()[0])
    parser.add_argument("service", help="users, agents, ... (or the package: starling_users)")
    actions = parser.add_subparsers(dest="action", required=True)
    up = actions.add_parser(
        "upgrade", help="bring a database to the heads of the service's and core's history"
    )
    up.add_argument("--url", help="the database (default: the service's settings)")
    new = actions.add_parser("revision", help="generate a revision from the models")
    new.add_argument("-m", "--message", required=True)
    new.add_argument("--url", help="compare with this database (default: a scratch one at the current heads)")
    actions.add_parser("history", help="list the revisions, the service's and core's")
    args = parser.parse_args(argv)
    service = find(args.service)
    if args.action == "upgrade":
        asyncio.run(_upgrade(args.url or service.database_url, service.migrations))
        print(f"{service.package}: upgraded to heads")
    elif args.action == "revision":
        print(f"{service.package}: wrote {revision(service, args.message, args.url)}")
    else:
        command.history(alembic_config(service.migrations, service.database_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
