"""`starling-users create-admin --email ... --password ... --name ...`: an administrator from the shell."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence

from pydantic import ValidationError

from starling_core.db import Database
from starling_core.migrations import upgrade
from starling_users.app import MIGRATIONS
from starling_users.passwords import Passwords
from starling_users.repository import DatabaseUserStores
from starling_users.schemas import UserCreate
from starling_users.service import UsersService
from starling_users.settings import UsersSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="starling-users", description="Starling users service commands")
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser("create-admin", help="create an administrator (nothing if the email exists)")
    admin.add_argument("--email", required=True)
    admin.add_argument("--password", help="asked for on the terminal when left out")
    admin.add_argument("--name", default="Administrator")
    return parser


async def create_admin(settings: UsersSettings, data: UserCreate) -> bool:
    """Create the administrator; False when a user with that email already exists."""
    database = Database.from_url(settings.database_url)
    try:
        if settings.auto_migrate:
            await upgrade(database, MIGRATIONS)
        service = UsersService(DatabaseUserStores(database), Passwords.from_settings(settings))
        created = await service.ensure_admin(email=data.email, password=data.password, name=data.name)
    finally:
        await database.dispose()
    return created is not None


def main(argv: Sequence[str] | None = None, settings: UsersSettings | None = None) -> int:
    args = _parser().parse_args(argv)
    password = args.password if args.password is not None else getpass.getpass("Password: ")
    try:
        data = UserCreate(name=args.name, email=args.email, password=password)
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            print(f"{'.'.join(map(str, error['loc']))}: {error['msg']}", file=sys.stderr)
        return 2
    if asyncio.run(create_admin(settings or UsersSettings(), data)):
        print(f"Created the administrator {data.email}")
    else:
        print(f"A user with the email {data.email} already exists; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
