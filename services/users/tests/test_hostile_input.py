"""Hostile input to the users service: a 4xx with a JSON `detail`, never a 500, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re

import httpx
import pytest

from starling_core.pagination import encode_cursor

from .helpers import PASSWORD, bearer, login, register

SQL = "'; DROP TABLE users; --"
NUL_MESSAGE = "String should not contain NUL (\\u0000) characters"
JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def details(response: httpx.Response) -> list[tuple[list[str | int], str]]:
    return [(error["loc"], error["msg"]) for error in response.json()["detail"]]


async def test_a_sql_looking_name_is_stored_verbatim_and_the_table_survives(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/users", json={"name": SQL, "email": "bobby@example.com", "password": PASSWORD}
    )
    assert created.status_code == 201
    assert created.json()["name"] == SQL
    listed = await admin_client.get("/users")
    assert listed.status_code == 200
    assert [user["name"] for user in listed.json()["items"] if user["role"] == "user"] == [SQL]
    assert await login(client, "bobby@example.com")


@pytest.mark.parametrize("field", ["name", "email", "password"])
async def test_a_nul_in_a_registration_field_is_422(client: httpx.AsyncClient, field: str) -> None:
    body = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD}
    body[field] = body[field][:2] + "\x00" + body[field][2:]
    response = await client.post("/users", json=body)
    assert response.status_code == 422
    assert details(response) == [(["body", field], NUL_MESSAGE)]


async def test_a_nul_in_a_json_login_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", json={"email": "ada@example.com\x00", "password": PASSWORD})
    assert response.status_code == 422
    assert details(response) == [(["body", "email"], NUL_MESSAGE)]


async def test_a_nul_in_a_form_login_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/token", content=b"username=ada%00@example.com&password=x", headers=FORM
    )
    assert response.status_code == 422
    assert details(response) == [(["body", "username"], NUL_MESSAGE)]


async def test_an_email_too_long_once_lower_cased_is_422(client: httpx.AsyncClient) -> None:
    # 245 characters, but "İ".lower() is two: the normalized copy would overflow its 254-wide column.
    email = "a@" + "\N{LATIN CAPITAL LETTER I WITH DOT ABOVE}" * 240 + ".io"
    response = await client.post("/users", json={"name": "Ada", "email": email, "password": PASSWORD})
    assert response.status_code == 422
    assert [loc for loc, _ in details(response)] == [["body", "email"]]


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "x" * 100_000), ("email", "a@" + "b" * 100_000 + ".io"), ("password", "p" * 100_000)],
)
async def test_very_long_strings_are_422(client: httpx.AsyncClient, field: str, value: str) -> None:
    body = {"name": "Ada", "email": "ada@example.com", "password": PASSWORD, field: value}
    response = await client.post("/users", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "string_too_long"


@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000 + b"]" * 100_000, b'{"name": "\xff", "email": "a@b.io", "password": "x"}', b"{" * 50],
    ids=["deeply-nested", "invalid-utf8", "unclosed"],
)
async def test_unparseable_registrations_and_logins_are_400(client: httpx.AsyncClient, body: bytes) -> None:
    for path in ("/users", "/auth/token"):
        response = await client.post(path, content=body, headers=JSON)
        assert response.status_code == 400, path
        assert response.json()["detail"].startswith("Malformed JSON body")


@pytest.mark.parametrize("body", [b"garbage", b"--other\r\n\r\n"])
async def test_a_broken_multipart_login_is_400(client: httpx.AsyncClient, body: bytes) -> None:
    response = await client.post(
        "/auth/token", content=body, headers={"Content-Type": "multipart/form-data; boundary=xyz"}
    )
    assert response.status_code == 400
    assert "multipart" in response.json()["detail"]


async def test_a_multipart_login_without_a_boundary_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", content=b"x", headers={"Content-Type": "multipart/form-data"})
    assert response.status_code == 400
    assert "boundary" in response.json()["detail"]


@pytest.mark.parametrize("literal", [b"1e400", b"NaN", b"-Infinity", b"1" + b"0" * 100])
async def test_huge_and_non_finite_numbers_for_a_name_are_422(
    client: httpx.AsyncClient, literal: bytes
) -> None:
    user = await register(client)
    token = await login(client)
    response = await client.patch(
        f"/users/{user['id']}", content=b'{"name": ' + literal + b"}", headers={**JSON, **bearer(token)}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]


@pytest.mark.parametrize("limit", [str(10**100), "1e400", "NaN", "-1"])
async def test_huge_or_non_finite_page_sizes_are_422(admin_client: httpx.AsyncClient, limit: str) -> None:
    response = await admin_client.get("/users", params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "limit"]


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_a_nul_in_the_user_id_is_422(auth_client: httpx.AsyncClient, method: str) -> None:
    response = await auth_client.request(method, "/users/abc%00def", json={"name": "Ada"})
    assert response.status_code == 422
    assert details(response) == [(["path", "user_id"], NUL_MESSAGE)]


async def test_a_very_long_user_id_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/users/" + "9" * 10_000)
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/users", "/auth/token"])
async def test_an_oversized_body_is_413_json(client: httpx.AsyncClient, path: str) -> None:
    body = json.dumps({"name": "x" * (2 * 1024 * 1024), "email": "a@b.io", "password": PASSWORD})
    response = await client.post(path, content=body, headers=JSON)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_an_oversized_form_login_is_413_json(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", content=b"username=" + b"a" * (2 * 1024 * 1024), headers=FORM)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/users", {"GET", "HEAD", "POST"}),
        ("PUT", "/users/some-id", {"GET", "HEAD", "PATCH", "DELETE"}),
    ],
)
async def test_a_wrong_method_is_405_naming_every_method_of_the_path(
    client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405
    assert "detail" in response.json()
    assert set(response.headers["allow"].split(", ")) == allowed


@pytest.mark.parametrize("sent", [b"id\r\nSet-Cookie: stolen=1", "\N{SNOWMAN}".encode(), b"x" * 1000])
async def test_an_unsafe_request_id_on_registration_is_replaced(
    client: httpx.AsyncClient, sent: bytes
) -> None:
    request = client.build_request("POST", "/users", json={})
    request.headers = httpx.Headers([*request.headers.raw, (b"x-request-id", sent)])
    response = await client.send(request)
    assert response.status_code == 422
    assert "detail" in response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert "set-cookie" not in response.headers


@pytest.mark.parametrize("created_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"])
async def test_a_cursor_whose_time_is_out_of_range_is_422(
    admin_client: httpx.AsyncClient, created_at: str
) -> None:
    # Times the parser takes whose UTC is outside the years 1..9999 that Python's datetime holds.
    cursor = encode_cursor({"created_at": created_at, "id": "u"})
    response = await admin_client.get("/users", params={"cursor": cursor})
    assert response.status_code == 422
    assert [loc for loc, _ in details(response)] == [["query", "cursor"]]


async def test_a_forged_cursor_holding_a_nul_is_422(admin_client: httpx.AsyncClient) -> None:
    # Base64 hides the NUL from the query's own check; PostgreSQL refused it in the comparison, a 500.
    cursor = encode_cursor({"created_at": "2026-01-01T00:00:00Z", "id": "\x00"})
    response = await admin_client.get("/users", params={"cursor": cursor})
    assert response.status_code == 422
    assert [loc for loc, _ in details(response)] == [["query", "cursor"]]
