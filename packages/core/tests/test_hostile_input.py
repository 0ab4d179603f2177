"""Hostile input meets a 4xx with a JSON `detail`, never a 500, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
import logging
import re

import httpx
import pytest
from starlette.types import ASGIApp, Message

JSON = {"Content-Type": "application/json"}
SQL = "'; DROP TABLE items; --"


async def post_raw(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await client.post("/api/items", content=body, headers=JSON)


# --- bodies that are not JSON the parser can take -------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,  # valid JSON, nested past the parser's recursion limit
        b'{"name": "' + b"\xff\xfe" + b'"}',  # invalid UTF-8 inside a string
        b'{"name": "caf\xc3"}',  # a truncated multi-byte character
        b'{"name": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8, which UTF-8 forbids
        b'{"name": ' + b"9" * 5000 + b"}",  # an integer over Python's 4300-digit conversion limit
    ],
    ids=["deeply-nested", "invalid-utf8", "truncated-utf8", "encoded-surrogate", "5000-digit-integer"],
)
async def test_unparseable_bodies_are_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await post_raw(client, body)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON body")


async def test_a_leading_byte_order_mark_is_tolerated(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, b'\xef\xbb\xbf{"name": "kettle"}')
    assert response.status_code == 201
    assert response.json()["name"] == "kettle"


async def test_nesting_the_parser_takes_is_refused_by_validation(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, b'{"name": ' + b"[" * 500 + b"]" * 500 + b"}")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


# --- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
async def test_non_finite_numbers_are_422(client: httpx.AsyncClient, literal: bytes) -> None:
    response = await post_raw(client, b'{"name": ' + literal + b"}")
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"loc": ["body", "name"], "msg": "Input should be a finite number", "type": "finite_number"}
    ]


@pytest.mark.parametrize("limit", [str(10**100), "1e400", "NaN", "9" * 5000])
async def test_huge_or_non_finite_integers_in_the_query_are_422(
    client: httpx.AsyncClient, limit: str
) -> None:
    response = await client.get("/api/items", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


async def test_a_huge_integer_for_a_string_field_is_422(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, json.dumps({"name": 10**100}).encode())
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "string_type"


# --- text the database cannot store ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["kettle\x00", "\x00", "a\x00b"])
async def test_a_nul_in_the_body_is_422_not_a_database_error(client: httpx.AsyncClient, name: str) -> None:
    response = await client.post("/api/items", json={"name": name})
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "name"],
            "msg": "String should not contain NUL (\\u0000) characters",
            "type": "value_error",
        }
    ]


async def test_a_nul_in_a_key_is_422_and_the_key_is_named(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, b'{"name": "kettle", "x\\u0000y": 1}')
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "x\x00y"]


async def test_an_unpaired_surrogate_is_422(client: httpx.AsyncClient) -> None:
    # json.dumps escapes it as "\ud800": valid JSON that no UTF-8 encoder (driver or response) can take.
    response = await post_raw(client, b'{"name": "tea \\ud800"}')
    assert response.status_code == 422
    assert "surrogate" in response.json()["detail"][0]["msg"]


async def test_a_paired_surrogate_escape_is_ordinary_text(client: httpx.AsyncClient) -> None:
    response = await post_raw(client, b'{"name": "tea \\ud83c\\udf75"}')
    assert response.status_code == 201
    assert response.json()["name"] == "tea \N{TEACUP WITHOUT HANDLE}"


async def test_a_nul_in_the_query_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/items", params={"prefix": "a\x00"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "prefix"]


async def test_a_nul_in_a_path_parameter_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/items/by-name/a%00b")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "name"]


# --- strings that only look dangerous, and long ones ----------------------------------------------


async def test_sql_looking_text_is_stored_and_returned_verbatim(client: httpx.AsyncClient) -> None:
    created = await client.post("/api/items", json={"name": SQL})
    assert created.status_code == 201
    assert created.json()["name"] == SQL
    found = await client.get(f"/api/items/by-name/{SQL}")
    assert found.status_code == 200
    assert found.json()["name"] == SQL
    # The table is still there and still answers.
    assert (await client.get("/api/items")).json() == [SQL]


async def test_a_very_long_string_is_422_and_not_echoed(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/items", json={"name": "x" * 500_000})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "string_too_long"
    assert len(response.content) < 1000


async def test_a_very_long_path_parameter_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/items/by-name/" + "x" * 50_000)
    assert response.status_code == 404
    assert "detail" in response.json()


async def test_a_body_one_byte_over_the_limit_is_413_json(client: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "x" * (1024 * 1024 - 11)}).encode()
    assert len(body) == 1024 * 1024 + 1
    response = await post_raw(client, body)
    assert response.status_code == 413
    assert response.headers["content-type"] == "application/json"
    assert "detail" in response.json()


async def test_a_body_exactly_at_the_limit_is_read(client: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "x" * (1024 * 1024 - 12)}).encode()
    assert len(body) == 1024 * 1024
    response = await post_raw(client, body)
    assert response.status_code == 422  # read and validated: too long a name, not too large a body
    assert response.json()["detail"][0]["type"] == "string_too_long"


async def test_a_client_leaving_mid_body_is_not_a_server_error(
    started_app: ASGIApp, caplog: pytest.LogCaptureFixture
) -> None:
    # The first chunk arrives, then the connection drops: what a client timeout or shutdown looks like.
    incoming: list[Message] = [
        {"type": "http.request", "body": b'{"name": "ket', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/items",
        "raw_path": b"/api/items",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"40")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    with caplog.at_level(logging.INFO, logger="starling"):
        await started_app(scope, receive, send)  # raising here is what servers log as a traceback
    assert sent[0]["status"] == 499
    # besides the request's own access line
    assert [r.getMessage() for r in caplog.records if r.name.startswith("starling.errors")] == [
        "client disconnected during POST /api/items"
    ]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --- X-Request-ID ----------------------------------------------------------------------------------

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@pytest.mark.parametrize(
    "sent",
    [
        b"abc\r\nSet-Cookie: session=stolen",
        b"abc\nX-Injected: 1",
        "caf\N{LATIN SMALL LETTER E WITH ACUTE}".encode(),
        b"\xff\xfe",
        b"a" * 129,
        b"a" * 8000,
        b"two words",
        b"<script>",
        b"",
    ],
    ids=["crlf", "lf", "utf8", "latin1-bytes", "129-chars", "8000-chars", "space", "markup", "empty"],
)
async def test_unsafe_request_ids_are_replaced_never_echoed(client: httpx.AsyncClient, sent: bytes) -> None:
    # Raw bytes on the request, as a hostile client sends them: httpx's ASGI transport does not clean them.
    request = client.build_request("GET", "/nowhere")
    request.headers = httpx.Headers([*request.headers.raw, (b"x-request-id", sent)])
    response = await client.send(request)
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
    returned = response.headers["x-request-id"]
    assert GENERATED_ID.fullmatch(returned)
    assert returned.encode() != sent
    assert "set-cookie" not in response.headers
    assert "x-injected" not in response.headers


async def test_a_sane_request_id_at_the_length_limit_is_echoed(client: httpx.AsyncClient) -> None:
    sent = "a1._:-" * 21 + "ab"
    assert len(sent) == 128
    response = await client.get("/nowhere", headers={"X-Request-ID": sent})
    assert response.status_code == 404
    assert response.headers["x-request-id"] == sent
