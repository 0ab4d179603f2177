"""Hostile input to the agents service: a 4xx with a JSON `detail`, never a 500, on SQLite and PostgreSQL."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.types import ASGIApp

from starling_core.pagination import encode_cursor
from starling_testkit.tokens import TokenFactory

from .asgi_ws import websocket_connect
from .helpers import SAMPLE_TEXT

SQL = "'; DROP TABLE agents; --"
NUL_MESSAGE = "String should not contain NUL (\\u0000) characters"
JSON = {"Content-Type": "application/json"}


def locs(response: httpx.Response) -> list[list[str | int]]:
    return [error["loc"] for error in response.json()["detail"]]


async def test_sql_looking_names_and_input_are_stored_verbatim_and_the_tables_survive(
    admin_client: httpx.AsyncClient,
) -> None:
    agent = {"agent_id": "bobby", "name": SQL, "description": SQL, "kind": "summarizer"}
    created = await admin_client.post("/api/v1/agents", json=agent)
    assert created.status_code == 201
    assert (created.json()["name"], created.json()["description"]) == (SQL, SQL)
    ran = await admin_client.post(
        "/api/v1/agents/run", json={"agent_id": "bobby", "input_text": SQL + " " + SQL}
    )
    assert ran.status_code == 200
    assert ran.json()["status"] == "completed"
    listed = await admin_client.get("/api/v1/agents")
    assert "bobby" in [item["agent_id"] for item in listed.json()]
    runs = await admin_client.get("/api/v1/agents/runs")
    assert [item["run_id"] for item in runs.json()["items"]] == [ran.json()["run_id"]]


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"agent_id": "summarizer", "input_text": "a\x00b"}, ["body", "input_text"]),
        ({"agent_id": "summ\x00arizer", "input_text": SAMPLE_TEXT}, ["body", "agent_id"]),
    ],
)
async def test_a_nul_in_a_run_is_422(
    auth_client: httpx.AsyncClient, body: dict[str, str], loc: list[str]
) -> None:
    response = await auth_client.post("/api/v1/agents/run", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": loc, "msg": NUL_MESSAGE, "type": "value_error"}]


async def test_a_nul_in_an_uploaded_runs_fields_is_422(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.post(
        "/api/v1/agents/run",
        data={"agent_id": "summarizer\x00"},
        files={"file": ("notes.txt", SAMPLE_TEXT.encode(), "text/plain")},
    )
    assert response.status_code == 422
    assert locs(response) == [["body", "agent_id"]]


async def test_an_unpaired_surrogate_in_a_run_is_422(auth_client: httpx.AsyncClient) -> None:
    body = b'{"agent_id": "summarizer", "input_text": "text \\udfff"}'
    response = await auth_client.post("/api/v1/agents/run", content=body, headers=JSON)
    assert response.status_code == 422
    assert locs(response) == [["body", "input_text"]]


@pytest.mark.parametrize(
    ("config", "loc"),
    [
        ({"labels": {"bad\x00label": ["word"]}}, ["body", "config", "labels", "bad\x00label"]),
        ({"labels": {"label": ["wo\x00rd"]}}, ["body", "config", "labels", "label", 0]),
    ],
)
async def test_a_nul_in_a_classifier_config_is_422(
    admin_client: httpx.AsyncClient, config: dict[str, object], loc: list[str | int]
) -> None:
    agent = {"agent_id": "labels", "name": "Labels", "kind": "classifier", "config": config}
    response = await admin_client.post("/api/v1/agents", json=agent)
    assert response.status_code == 422
    assert locs(response) == [loc]


@pytest.mark.parametrize(
    ("kind", "config"),
    [
        ("llm", b'{"model": "m", "temperature": NaN}'),
        ("llm", b'{"model": "m", "temperature": Infinity}'),
        ("llm", b'{"model": "m", "temperature": 1e400}'),
        ("summarizer", b'{"max_sentences": 1' + b"0" * 100 + b"}"),
        ("summarizer", b'{"max_sentences": 1e400}'),
    ],
)
async def test_huge_and_non_finite_numbers_in_a_config_are_422(
    admin_client: httpx.AsyncClient, kind: str, config: bytes
) -> None:
    body = (
        b'{"agent_id": "numbers", "name": "Numbers", "kind": "'
        + kind.encode()
        + b'", "config": '
        + config
        + b"}"
    )
    response = await admin_client.post("/api/v1/agents", content=body, headers=JSON)
    assert response.status_code == 422
    [loc] = locs(response)
    assert loc[0] == "body"
    assert loc[-2:] == ["config", "temperature" if kind == "llm" else "max_sentences"]


@pytest.mark.parametrize(
    "base_url", ["http://\x04llm.test", "ftp://llm.test", "llm.test/v1", "http://", "a b"]
)
async def test_an_llm_base_url_the_client_could_never_call_is_422(
    admin_client: httpx.AsyncClient, base_url: str
) -> None:
    agent = {"agent_id": "llm", "name": "LLM", "kind": "llm", "config": {"model": "m", "base_url": base_url}}
    response = await admin_client.post("/api/v1/agents", json=agent)
    assert response.status_code == 422
    assert locs(response) == [["body", "llm", "config", "base_url"]]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": str(10**100)}, "limit"),
        ({"limit": "1e400"}, "limit"),
        ({"since": "\x00"}, "since"),
        ({"since": "9" * 5000}, "since"),
        ({"agent_id": "a\x00"}, "agent_id"),
        ({"status": "queued\x00"}, "status"),
    ],
)
async def test_hostile_run_filters_are_422(
    auth_client: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await auth_client.get("/api/v1/agents/runs", params=params)
    assert response.status_code == 422
    assert locs(response) == [["query", field]]


@pytest.mark.parametrize(
    ("method", "path", "name"),
    [
        ("GET", "/api/v1/agents/sum%00marizer", "agent_id"),
        ("DELETE", "/api/v1/agents/sum%00marizer", "agent_id"),
        ("GET", "/api/v1/agents/runs/%00", "run_id"),
        ("POST", "/api/v1/agents/runs/%00/cancel", "run_id"),
    ],
)
async def test_a_nul_in_a_path_parameter_is_422(
    admin_client: httpx.AsyncClient, method: str, path: str, name: str
) -> None:
    response = await admin_client.request(method, path)
    assert response.status_code == 422
    assert response.json()["detail"] == [{"loc": ["path", name], "msg": NUL_MESSAGE, "type": "value_error"}]


async def test_following_a_run_id_with_a_nul_closes_as_unknown(
    started_app: ASGIApp, token_factory: TokenFactory
) -> None:
    async with websocket_connect(
        started_app, f"/api/v1/agents/runs/a\x00b/events?token={token_factory()}"
    ) as ws:
        assert await ws.accepted()
        assert await ws.receive_json() is None
        assert ws.close_code == 4404


async def test_a_very_long_agent_id_in_the_path_is_404(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/api/v1/agents/" + "a" * 10_000)
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"agent_id": "summarizer", "input_text": "\xc3\x28"}',
        b'{"agent_id": ',
    ],
    ids=["deeply-nested", "invalid-utf8", "truncated"],
)
async def test_unparseable_run_bodies_are_400(auth_client: httpx.AsyncClient, body: bytes) -> None:
    response = await auth_client.post("/api/v1/agents/run", content=body, headers=JSON)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Malformed JSON body")


async def test_a_run_body_over_the_size_limit_is_413_json(auth_client: httpx.AsyncClient) -> None:
    body = {"agent_id": "summarizer", "input_text": "word " * 300_000}
    response = await auth_client.post("/api/v1/agents/run", json=body)
    assert response.status_code == 413
    assert "limit" in response.json()["detail"]


async def test_a_multipart_run_without_a_boundary_is_400(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.post(
        "/api/v1/agents/run", content=b"agent_id=summarizer", headers={"Content-Type": "multipart/form-data"}
    )
    assert response.status_code == 400
    assert "boundary" in response.json()["detail"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/v1/agents", {"GET", "HEAD", "POST"}),
        ("PATCH", "/api/v1/agents/summarizer", {"GET", "HEAD", "DELETE"}),
    ],
)
async def test_a_wrong_method_is_405_naming_every_method_of_the_path(
    auth_client: httpx.AsyncClient, method: str, path: str, allowed: set[str]
) -> None:
    response = await auth_client.request(method, path)
    assert response.status_code == 405
    assert "detail" in response.json()
    assert set(response.headers["allow"].split(", ")) == allowed


@pytest.mark.parametrize("sent", [b"run\r\nLocation: http://evil.test", "\N{SNOWMAN}".encode(), b"r" * 200])
async def test_an_unsafe_request_id_on_a_run_is_replaced(auth_client: httpx.AsyncClient, sent: bytes) -> None:
    request = auth_client.build_request(
        "POST", "/api/v1/agents/run", json={"agent_id": "nope", "input_text": "x"}
    )
    request.headers = httpx.Headers([*request.headers.raw, (b"x-request-id", sent)])
    response = await auth_client.send(request)
    assert response.status_code == 404
    assert "detail" in response.json()
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])
    assert "location" not in response.headers


# Times the parser takes whose UTC is outside the years 1..9999 that Python's datetime holds.
OUT_OF_RANGE_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        *(("since", at) for at in OUT_OF_RANGE_TIMES),
        *(("cursor", encode_cursor({"created_at": at, "run_id": "r"})) for at in OUT_OF_RANGE_TIMES),
    ],
)
async def test_a_time_whose_utc_is_out_of_range_is_422(
    auth_client: httpx.AsyncClient, field: str, value: str
) -> None:
    response = await auth_client.get("/api/v1/agents/runs", params={field: value})
    assert response.status_code == 422
    assert locs(response) == [["query", field]]
