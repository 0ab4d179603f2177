"""The HTTP API: the catalogue, synchronous runs, reading runs, uploads, limits."""

from __future__ import annotations

import json

import httpx

from starling_core.ratelimit import MemoryRateLimitBackend
from starling_core.settings import ServiceSettings
from starling_testkit import BoundDatabase
from starling_testkit.tokens import TokenFactory

from .helpers import SAMPLE_TEXT, build_app, client_for, started

RUN_FIELDS = {"run_id", "agent_id", "status", "output", "token_usage", "error", "created_at", "finished_at"}
LLM_AGENT = {
    "agent_id": "echo-llm",
    "name": "Echo",
    "kind": "llm",
    "config": {"model": "tiny-1", "base_url": "http://llm.test"},
}


async def run(
    client: httpx.AsyncClient, agent_id: str = "summarizer", text: str = SAMPLE_TEXT
) -> httpx.Response:
    return await client.post("/api/v1/agents/run", json={"agent_id": agent_id, "input_text": text})


# --- the catalogue ---------------------------------------------------------------------------------


async def test_the_built_in_agents_are_listed(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/api/v1/agents")
    assert response.status_code == 200
    assert response.json() == [
        {
            "agent_id": "classifier",
            "name": "Sentiment classifier",
            "description": response.json()[0]["description"],
            "kind": "classifier",
        },
        {
            "agent_id": "summarizer",
            "name": "Summarizer",
            "description": response.json()[1]["description"],
            "kind": "summarizer",
        },
    ]


async def test_no_token_is_401_and_a_missing_scope_403(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    anonymous = await client.get("/api/v1/agents")
    assert anonymous.status_code == 401
    assert "Authorization" in anonymous.json()["detail"]
    headers = {"Authorization": f"Bearer {token_factory(scopes=['reports:read'])}"}
    forbidden = await client.get("/api/v1/agents", headers=headers)
    assert forbidden.status_code == 403
    assert "agent:read" in forbidden.json()["detail"]


async def test_an_agent_is_read_with_its_config(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/api/v1/agents/summarizer")
    assert response.status_code == 200
    assert response.json()["config"] == {"max_sentences": 3}


async def test_an_unknown_agent_is_404(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/api/v1/agents/nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Agent nope not found"}


async def test_an_admin_creates_and_deletes_an_agent(admin_client: httpx.AsyncClient) -> None:
    body = {"agent_id": "brief", "name": "Brief", "kind": "summarizer", "config": {"max_sentences": 1}}
    created = await admin_client.post("/api/v1/agents", json=body)
    assert created.status_code == 201
    assert created.json()["config"] == {"max_sentences": 1}
    assert (await admin_client.post("/api/v1/agents", json=body)).status_code == 409
    assert (await admin_client.delete("/api/v1/agents/brief")).status_code == 204
    assert (await admin_client.delete("/api/v1/agents/brief")).status_code == 404


async def test_creating_an_agent_needs_agent_admin(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.post(
        "/api/v1/agents", json={"agent_id": "x", "name": "X", "kind": "summarizer"}
    )
    assert response.status_code == 403


async def test_config_is_validated_by_kind(admin_client: httpx.AsyncClient) -> None:
    invalid = [
        {"kind": "summarizer", "config": {"max_sentences": 0}},
        {"kind": "summarizer", "config": {"max_sentences": 51}},
        {"kind": "classifier", "config": {"labels": {}}},
        {"kind": "classifier", "config": {}},
        {"kind": "llm", "config": {"model": "m", "temperature": 2.5}},
        {"kind": "llm", "config": {}},
        {"kind": "robot", "config": {}},
    ]
    for fields in invalid:
        response = await admin_client.post(
            "/api/v1/agents", json={"agent_id": "bad", "name": "Bad", **fields}
        )
        assert response.status_code == 422, fields
        assert isinstance(response.json()["detail"], list)


async def test_agent_ids_are_slugs_and_not_reserved(admin_client: httpx.AsyncClient) -> None:
    for agent_id in ("Not A Slug", "runs", ""):
        body = {"agent_id": agent_id, "name": "N", "kind": "summarizer"}
        assert (await admin_client.post("/api/v1/agents", json=body)).status_code == 422, agent_id


# --- runs ------------------------------------------------------------------------------------------


async def test_a_synchronous_summary_run_completes(auth_client: httpx.AsyncClient) -> None:
    response = await run(auth_client)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == RUN_FIELDS
    assert body["status"] == "completed"
    assert body["agent_id"] == "summarizer"
    assert len(body["output"]) < len(SAMPLE_TEXT)
    assert body["token_usage"] == len(SAMPLE_TEXT.split()) + len(body["output"].split())
    assert body["error"] is None
    assert body["finished_at"] is not None


async def test_the_classifier_labels_the_obvious_text(auth_client: httpx.AsyncClient) -> None:
    response = await run(auth_client, "classifier", "I love it, a great and wonderful product.")
    assert json.loads(response.json()["output"])["label"] == "positive"


async def test_run_input_is_validated(auth_client: httpx.AsyncClient) -> None:
    for body in (
        {"agent_id": "", "input_text": "text"},
        {"agent_id": "summarizer", "input_text": ""},
        {"agent_id": "summarizer", "input_text": "x" * 100_001},
        {"agent_id": "summarizer"},
    ):
        response = await auth_client.post("/api/v1/agents/run", json=body)
        assert response.status_code == 422, body
    assert (await run(auth_client, text="x" * 100_000)).status_code == 200


async def test_running_an_unknown_agent_is_404(auth_client: httpx.AsyncClient) -> None:
    response = await run(auth_client, "nope")
    assert response.status_code == 404
    assert response.json() == {"detail": "Agent nope not found"}


async def test_running_needs_agent_run(client: httpx.AsyncClient, token_factory: TokenFactory) -> None:
    headers = {"Authorization": f"Bearer {token_factory(scopes=['agent:read'])}"}
    response = await client.post(
        "/api/v1/agents/run", json={"agent_id": "x", "input_text": "y"}, headers=headers
    )
    assert response.status_code == 403


async def test_an_llm_agent_runs_through_the_endpoint(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    def upstream(request: httpx.Request) -> httpx.Response:
        content = json.loads(request.content)["messages"][-1]["content"]
        answer = {"choices": [{"message": {"content": content.upper()}}], "usage": {"total_tokens": 9}}
        return httpx.Response(200, json=answer)

    transport = httpx.MockTransport(upstream)
    app = build_app(app_settings, app_database, llm_transport=transport, llm_allowed_hosts=("llm.test",))
    async with (
        started(app) as served,
        client_for(served, token_factory(scopes=["agent:run", "agent:admin"])) as c,
    ):
        assert (await c.post("/api/v1/agents", json=LLM_AGENT)).status_code == 201
        body = (await run(c, "echo-llm", "hello")).json()
    assert (body["status"], body["output"], body["token_usage"]) == ("completed", "HELLO", 9)


async def test_an_llm_failure_is_a_failed_run_with_its_reason(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(
        app_settings,
        app_database,
        llm_transport=httpx.MockTransport(lambda r: httpx.Response(503)),
        llm_allowed_hosts=("llm.test",),
    )
    async with (
        started(app) as served,
        client_for(served, token_factory(scopes=["agent:run", "agent:admin"])) as c,
    ):
        await c.post("/api/v1/agents", json=LLM_AGENT)
        response = await run(c, "echo-llm", "hello")
    assert response.status_code == 200
    assert (response.json()["status"], response.json()["error"]) == (
        "failed",
        "LLM endpoint answered HTTP 503",
    )


# --- reading runs ----------------------------------------------------------------------------------


async def test_a_run_is_read_by_its_owner_and_an_admin_only(
    auth_client: httpx.AsyncClient,
    admin_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    token_factory: TokenFactory,
) -> None:
    run_id = (await run(auth_client)).json()["run_id"]
    assert (await auth_client.get(f"/api/v1/agents/runs/{run_id}")).json()["run_id"] == run_id
    assert (await admin_client.get(f"/api/v1/agents/runs/{run_id}")).status_code == 200
    stranger = {"Authorization": f"Bearer {token_factory(sub='someone-else')}"}
    response = await client.get(f"/api/v1/agents/runs/{run_id}", headers=stranger)
    assert response.status_code == 404
    assert response.json() == {"detail": f"Run {run_id} not found"}


async def test_runs_are_listed_for_their_owner_and_all_for_an_admin(
    auth_client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    mine = [(await run(auth_client)).json()["run_id"] for _ in range(3)]
    await run(admin_client, "classifier", "bad")
    page = await auth_client.get("/api/v1/agents/runs", params={"limit": 2})
    assert page.status_code == 200
    assert [item["run_id"] for item in page.json()["items"]] == mine[:2]
    rest = await auth_client.get(
        "/api/v1/agents/runs", params={"limit": 2, "cursor": page.json()["next_cursor"]}
    )
    assert [item["run_id"] for item in rest.json()["items"]] == mine[2:]
    assert rest.json()["next_cursor"] is None
    everyone = (await admin_client.get("/api/v1/agents/runs")).json()["items"]
    assert len(everyone) == 4


async def test_runs_are_filtered_by_status_agent_and_time(auth_client: httpx.AsyncClient) -> None:
    summary = (await run(auth_client)).json()
    await run(auth_client, "classifier", "good")
    by_agent = (await auth_client.get("/api/v1/agents/runs", params={"agent_id": "summarizer"})).json()[
        "items"
    ]
    assert [item["run_id"] for item in by_agent] == [summary["run_id"]]
    assert (await auth_client.get("/api/v1/agents/runs", params={"status": "failed"})).json()["items"] == []
    later = (await auth_client.get("/api/v1/agents/runs", params={"since": "2999-01-01T00:00:00Z"})).json()
    assert later == {"items": [], "next_cursor": None}


async def test_a_bad_status_or_cursor_is_422(auth_client: httpx.AsyncClient) -> None:
    for params in ({"status": "sleeping"}, {"cursor": "!!"}, {"cursor": "eyJ4IjoxfQ"}, {"limit": 0}):
        assert (await auth_client.get("/api/v1/agents/runs", params=params)).status_code == 422, params


async def test_a_finished_run_cannot_be_cancelled(auth_client: httpx.AsyncClient) -> None:
    run_id = (await run(auth_client)).json()["run_id"]
    response = await auth_client.post(f"/api/v1/agents/runs/{run_id}/cancel")
    assert response.status_code == 409
    assert response.json() == {"detail": f"Run {run_id} is already completed"}
    assert (await auth_client.post("/api/v1/agents/runs/nope/cancel")).status_code == 404


# --- uploads ---------------------------------------------------------------------------------------


async def test_a_text_file_is_run_like_input_text(auth_client: httpx.AsyncClient) -> None:
    for content_type in ("text/plain", "text/markdown; charset=utf-8"):
        response = await auth_client.post(
            "/api/v1/agents/run",
            data={"agent_id": "summarizer"},
            files={"file": ("notes.txt", SAMPLE_TEXT.encode(), content_type)},
        )
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "completed"


async def test_an_uploaded_run_can_go_to_the_background(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.post(
        "/api/v1/agents/run",
        data={"agent_id": "summarizer", "background": "true"},
        files={"file": ("notes.md", b"# Notes\n\nShort.", "text/markdown")},
    )
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/v1/agents/runs/{response.json()['run_id']}"


async def test_a_binary_file_is_415_saying_why(auth_client: httpx.AsyncClient) -> None:
    cases = {
        ("image.png", b"\x89PNG\r\n\x1a\n", "image/png"): "Unsupported file type",
        ("bad.txt", b"\xff\xfe\xfa", "text/plain"): "not UTF-8",
        ("nul.txt", b"a\x00b", "text/plain"): "binary",
    }
    for upload, reason in cases.items():
        response = await auth_client.post(
            "/api/v1/agents/run", data={"agent_id": "summarizer"}, files={"file": upload}
        )
        assert response.status_code == 415, upload
        assert reason in response.json()["detail"]


async def test_a_file_over_the_limit_is_413(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(app_settings, app_database, max_input_chars=10)
    async with started(app) as served, client_for(served, token_factory()) as c:
        files = {"file": ("long.txt", "é" * 11, "text/plain")}
        response = await c.post("/api/v1/agents/run", data={"agent_id": "summarizer"}, files=files)
        assert response.status_code == 413
        files = {"file": ("fits.txt", "é" * 10, "text/plain")}
        assert (
            await c.post("/api/v1/agents/run", data={"agent_id": "summarizer"}, files=files)
        ).status_code == 200


async def test_an_upload_without_agent_or_file_is_422(auth_client: httpx.AsyncClient) -> None:
    no_agent = await auth_client.post("/api/v1/agents/run", files={"file": ("a.txt", b"Hi.", "text/plain")})
    assert no_agent.status_code == 422
    assert no_agent.json()["detail"][0]["loc"] == ["body", "agent_id"]
    no_file = await auth_client.post(
        "/api/v1/agents/run", data={"agent_id": "summarizer"}, files={"x": ("a", b"", "text/plain")}
    )
    assert no_file.status_code == 422
    assert no_file.json()["detail"][0]["loc"] == ["body", "file"]


# --- limits and documents --------------------------------------------------------------------------


async def test_the_61st_run_in_a_minute_is_rate_limited(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    # A clock that stands still, so the 61 requests cannot straddle two windows.
    limiter = MemoryRateLimitBackend(clock=lambda: 1_800_000_000.0)
    app = build_app(app_settings, app_database, rate_limit_backend=limiter)
    async with started(app) as served, client_for(served, token_factory()) as caller:
        for _ in range(60):
            assert (await run(caller, "classifier", "good")).status_code == 200
        limited = await run(caller, "classifier", "good")
    assert limited.status_code == 429
    assert limited.json() == {"detail": "Rate limit exceeded"}
    assert int(limited.headers["Retry-After"]) >= 1


async def test_the_openapi_document_lists_the_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/v1/agents", "/api/v1/agents/run", "/api/v1/agents/runs/{run_id}"} <= set(paths)


async def test_the_openapi_document_shows_both_run_bodies_and_the_queued_answer(
    client: httpx.AsyncClient,
) -> None:
    run_operation = (await client.get("/openapi.json")).json()["paths"]["/api/v1/agents/run"]["post"]
    content = run_operation["requestBody"]["content"]
    assert set(content) == {"application/json", "multipart/form-data"}
    assert content["multipart/form-data"]["encoding"] == {"file": {"contentType": "text/plain"}}
    assert {"200", "202", "400", "404", "413", "415", "422"} <= set(run_operation["responses"])
    assert set(run_operation["responses"]["202"]["headers"]) == {"Location"}
