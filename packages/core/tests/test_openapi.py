"""`/openapi.json` describes every route from the models the route really uses."""

from __future__ import annotations

import httpx


async def test_openapi_document_describes_operations(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"] == "3.1.0"

    create = document["paths"]["/api/items"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemIn"
    }
    assert create["responses"]["201"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ItemOut"
    }
    assert {"409", "422", "413"} <= set(create["responses"])

    listing = document["paths"]["/api/items"]["get"]
    assert {p["name"] for p in listing["parameters"]} == {"prefix", "limit"}
    assert listing["responses"]["200"]["content"]["application/json"]["schema"]["type"] == "array"

    count = document["paths"]["/api/items/count"]["get"]
    assert count["security"] == [{"bearer": ["agent:admin"]}]
    assert {"401", "403"} <= set(count["responses"])

    item = document["paths"]["/api/items/{item_id}"]["get"]
    assert item["parameters"][0] == {
        "name": "item_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }

    schemas = document["components"]["schemas"]
    assert schemas["ItemIn"]["properties"]["name"]["minLength"] == 1
    assert "/health" not in document["paths"]
