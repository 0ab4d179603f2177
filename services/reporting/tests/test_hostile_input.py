"""Hostile input to the reporting service: a 4xx with a JSON `detail`, never a 500, on either database."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest

from .fakes import order_json

SQL = "'; DROP TABLE orders; --"
NUL_MESSAGE = "String should not contain NUL (\\u0000) characters"
JSON = {"Content-Type": "application/json"}


def locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


def one_order(**item: Any) -> dict[str, Any]:
    order = order_json("o-1", ("p-1", "Kettle", 1))
    order["items"][0].update(item)
    return {"orders": [order]}


async def test_sql_looking_ids_and_titles_are_stored_verbatim_and_the_table_survives(
    admin_client: httpx.AsyncClient,
) -> None:
    order = order_json(SQL, (SQL, SQL, 3))
    accepted = await admin_client.post("/api/v1/orders", json={"orders": [order]})
    assert accepted.status_code == 202
    assert accepted.json() == {"accepted": 1, "duplicates": 0}
    top = await admin_client.get("/top-products")
    assert top.status_code == 200
    assert top.json() == [{"product_id": SQL, "title": SQL, "rank": 1, "cnt_bought": 3}]
    replayed = await admin_client.post("/api/v1/orders", json={"orders": [order]})
    assert replayed.json() == {"accepted": 0, "duplicates": 1}


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"orders": [order_json("o\x00", ("p-1", "Kettle", 1))]}, ["body", "orders", 0, "order_id"]),
        (one_order(title="Ket\x00tle"), ["body", "orders", 0, "items", 0, "title"]),
        (one_order(product_id="\x00"), ["body", "orders", 0, "items", 0, "product_id"]),
    ],
)
async def test_a_nul_in_an_order_is_422(
    admin_client: httpx.AsyncClient, body: dict[str, Any], loc: list[str | int]
) -> None:
    response = await admin_client.post("/api/v1/orders", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": loc, "msg": NUL_MESSAGE, "type": "value_error"}]


@pytest.mark.parametrize(
    ("field", "literal"),
    [
        ("unit_price", b"NaN"),
        ("unit_price", b"Infinity"),
        ("unit_price", b"1e400"),
        ("unit_price", b'"NaN"'),
        ("unit_price", b"1" + b"0" * 100),
        ("unit_price", b"0.001"),
        ("quantity", b"1" + b"0" * 100),
        ("quantity", b"1e400"),
        ("quantity", b"-Infinity"),
    ],
)
async def test_huge_and_non_finite_numbers_in_an_item_are_422(
    admin_client: httpx.AsyncClient, field: str, literal: bytes
) -> None:
    placeholder = "__number__"
    body = json.dumps(one_order(**{field: placeholder})).encode().replace(b'"__number__"', literal)
    response = await admin_client.post("/api/v1/orders", content=body, headers=JSON)
    assert response.status_code == 422
    assert locs(response) == [["body", "orders", 0, "items", 0, field]]


async def test_a_very_long_title_is_422(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.post("/api/v1/orders", json=one_order(title="t" * 100_000))
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "string_too_long"


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/top-products", {"count": str(10**100)}, "count"),
        ("/top-products", {"count": "1e400"}, "count"),
        ("/top-products", {"count": "NaN"}, "count"),
        ("/top-products", {"since": "\x00"}, "since"),
        ("/top-products", {"until": "9" * 5000}, "until"),
        ("/api/v1/reports/agent-usage", {"since": "2026-01-01T00:00:00\x00"}, "since"),
        ("/api/v1/reports/agent-usage", {"until": "1e400"}, "until"),
    ],
)
async def test_hostile_report_queries_are_422(
    admin_client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await admin_client.get(path, params=params)
    assert response.status_code == 422
    assert locs(response) == [["query", field]]


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"orders": [{"order_id": "\xed\xa0\x80"}]}', b'{"orders": [1, 2'],
    ids=["deeply-nested", "utf8-encoded-surrogate", "truncated"],
)
async def test_unparseable_order_batches_are_400(admin_client: httpx.AsyncClient, body: bytes) -> None:
    response = await admin_client.post("/api/v1/orders", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON body")


async def test_an_order_batch_over_the_size_limit_is_413_json(admin_client: httpx.AsyncClient) -> None:
    orders = [order_json(f"o-{n}", ("p-1", "t" * 250, 1)) for n in range(1000)]
    body = json.dumps({"orders": orders * 5}).encode()
    assert len(body) > 1024 * 1024
    response = await admin_client.post("/api/v1/orders", content=body, headers=JSON)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("sent", [b"r\r\nX-Injected: 1", b"caf\xc3\xa9", b"q" * 129])
async def test_an_unsafe_request_id_on_ingestion_is_replaced(
    admin_client: httpx.AsyncClient, sent: bytes
) -> None:
    request = admin_client.build_request("POST", "/api/v1/orders", json={"orders": []})
    request.headers = httpx.Headers([*request.headers.raw, (b"x-request-id", sent)])
    response = await admin_client.send(request)
    assert response.status_code == 422
    assert "detail" in response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert "x-injected" not in response.headers


# Times the parser takes whose UTC is outside the years 1..9999 that Python's datetime holds.
OUT_OF_RANGE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize("at", OUT_OF_RANGE_TIMES)
@pytest.mark.parametrize(
    ("path", "field"),
    [("/top-products", "since"), ("/top-products", "until"), ("/api/v1/reports/agent-usage", "since")],
)
async def test_a_time_whose_utc_is_out_of_range_is_422(
    admin_client: httpx.AsyncClient, path: str, field: str, at: str
) -> None:
    response = await admin_client.get(path, params={field: at})
    assert response.status_code == 422
    assert locs(response) == [["query", field]]


@pytest.mark.parametrize("at", OUT_OF_RANGE_TIMES)
async def test_an_order_time_whose_utc_is_out_of_range_is_422(
    admin_client: httpx.AsyncClient, at: str
) -> None:
    batch = one_order()
    batch["orders"][0]["created_at"] = at
    response = await admin_client.post("/api/v1/orders", json=batch)
    assert response.status_code == 422
    assert locs(response) == [["body", "orders", 0, "created_at"]]
