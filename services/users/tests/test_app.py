"""Start-up: the administrator from the settings, created once; and the create-admin command."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from starling_testkit import BoundDatabase
from starling_users.app import create_app
from starling_users.cli import main
from starling_users.models import User
from starling_users.settings import UsersSettings

from .helpers import PASSWORD, started


async def start_once(settings: UsersSettings, database: BoundDatabase) -> None:
    async with started(create_app(settings, database=database)):
        pass


async def test_admin_from_settings_is_created_once_and_can_log_in(
    app_settings: UsersSettings, app_database: BoundDatabase, db_connection: AsyncConnection
) -> None:
    settings = app_settings.model_copy(
        update={"admin_email": "root@example.com", "admin_password": SecretStr(PASSWORD)}
    )
    await start_once(settings, app_database)
    await start_once(settings, app_database)

    rows = await db_connection.scalar(select(func.count()).select_from(User))
    assert rows == 1
    async with started(create_app(settings, database=app_database)) as client:
        response = await client.post("/auth/token", json={"email": "root@example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert "users:admin" in response.json()["scope"].split()


async def test_no_admin_settings_creates_nobody(
    app_settings: UsersSettings, app_database: BoundDatabase, db_connection: AsyncConnection
) -> None:
    await start_once(app_settings, app_database)
    assert await db_connection.scalar(select(func.count()).select_from(User)) == 0


def test_create_admin_command_migrates_and_is_idempotent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cli_settings(tmp_path)
    argv = ["create-admin", "--email", "root@example.com", "--password", PASSWORD, "--name", "Root"]
    assert main(argv, settings) == 0
    assert main(argv, settings) == 0
    out = capsys.readouterr().out
    assert "Created the administrator root@example.com" in out
    assert "already exists" in out


def test_create_admin_command_refuses_a_short_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cli_settings(tmp_path)
    assert main(["create-admin", "--email", "root@example.com", "--password", "short"], settings) == 2
    assert "password" in capsys.readouterr().err


def cli_settings(tmp_path: Path) -> UsersSettings:
    return UsersSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        password_time_cost=1,
        password_memory_cost=1024,
        password_parallelism=1,
    )
