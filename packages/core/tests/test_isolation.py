"""Each test's writes, committed or not, direct or through HTTP, are gone in the next test.

The tests run in file order under one worker; `_seen` carries what the previous test wrote so the
next can prove it is gone. Under xdist, `--dist loadfile` keeps them together; with another
distribution they still each assert the table starts empty.
"""

from __future__ import annotations

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from .itemsapp import Item


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Item)) or 0)


async def test_commit_in_session_is_visible_inside_the_test(db_session: AsyncSession) -> None:
    assert await _count(db_session) == 0
    db_session.add(Item(name="committed"))
    await db_session.commit()
    db_session.add(Item(name="committed-twice"))
    await db_session.commit()
    assert await _count(db_session) == 2


async def test_commit_in_previous_test_is_gone(db_session: AsyncSession) -> None:
    assert await _count(db_session) == 0


async def test_write_through_http_is_visible_to_the_test_session(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    response = await client.post("/api/items", json={"name": "over-http"})
    assert response.status_code == 201
    assert await _count(db_session) == 1
    assert (await client.get("/api/items")).json() == ["over-http"]


async def test_write_through_http_in_previous_test_is_gone(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    assert await _count(db_session) == 0
    assert (await client.get("/api/items")).json() == []


async def test_failed_request_rolls_back_only_its_own_savepoint(
    client: httpx.AsyncClient, db_session: AsyncSession
) -> None:
    assert (await client.post("/api/items", json={"name": "dup"})).status_code == 201
    # The second insert violates the unique constraint inside the request's own savepoint.
    transport_error = await _post_expecting_error(client, "dup")
    assert transport_error
    assert await _count(db_session) == 1


async def _post_expecting_error(client: httpx.AsyncClient, name: str) -> bool:
    try:
        response = await client.post("/api/items", json={"name": name})
    except Exception:
        return True
    return response.status_code >= 400
