"""`@operation` and `route()`: each method of a path reaches its own endpoint through one route."""

from __future__ import annotations

import httpx


async def test_one_route_sends_each_method_to_its_endpoint(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/items", json={"name": "kettle"})
    listed = await client.get("/api/items")
    assert created.status_code == 201
    assert listed.status_code == 200
    assert listed.json() == ["kettle"]


async def test_head_is_answered_by_the_get_endpoint_without_a_body(client: httpx.AsyncClient) -> None:
    response = await client.head("/api/items")
    assert response.status_code == 200
    assert response.content == b""
