"""Readiness (`/health`, which reaches the database) beside liveness (`/livez`, which reaches nothing)."""

from __future__ import annotations

import httpx
from asgi_lifespan import LifespanManager

from .itemsapp import ItemSettings, build_app


async def test_livez_answers_without_touching_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/livez")

    assert response.status_code == 200
    assert response.json() == {"status": "alive", "service": "items"}


async def test_livez_is_200_while_health_is_503_with_the_database_down() -> None:
    # Port 1 on loopback refuses at once: an unreachable PostgreSQL server.
    app = build_app(ItemSettings(database_url="postgresql+asyncpg://u:p@127.0.0.1:1/none"))
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        ready, alive = await client.get("/health"), await client.get("/livez")

    assert (ready.status_code, alive.status_code) == (503, 200)
