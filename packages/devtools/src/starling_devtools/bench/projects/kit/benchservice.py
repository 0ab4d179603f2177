"""The kit's project: `db_session` from the starling plugin, which the pytest11 entry point loads, on an
app with no routes and the bench's one table."""

from __future__ import annotations

from typing import TYPE_CHECKING

from benchmodel import Row

from starling_core.app import create_app as create_service

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from starling_core.db import Database
    from starling_core.settings import ServiceSettings

metadata = Row.metadata


def create_app(settings: ServiceSettings, *, database: Database | None = None) -> Starlette:
    return create_service(settings, routes=[], database=database)
