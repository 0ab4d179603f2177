"""Where llm agents may call and which key goes along: the policy, its settings, and the agent API."""

from __future__ import annotations

import json

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from starling_agents.app import outbound_policy
from starling_agents.outbound import HostRule, LLMKey, OutboundPolicy
from starling_agents.schemas import LLMConfig
from starling_agents.settings import AgentsSettings
from starling_core.settings import ServiceSettings
from starling_testkit import BoundDatabase
from starling_testkit.tokens import TokenFactory

from .helpers import build_app, client_for, started

SECRET = "sk-live-0123456789"
KEYS = {"main": LLMKey(key=SecretStr(SECRET), host="llm.test")}


def llm_agent(agent_id: str = "remote", **config: str) -> dict[str, object]:
    return {"agent_id": agent_id, "name": "Remote", "kind": "llm", "config": {"model": "m", **config}}


# --- host rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "url", "allowed"),
    [
        ("llm.test", "http://llm.test", True),
        ("llm.test", "https://LLM.test:8443/v1", True),  # no port in the rule: any port
        ("llm.test:443", "https://llm.test", True),  # the scheme's port counts
        ("llm.test:443", "http://llm.test", False),
        ("llm.test", "http://api.llm.test", False),
        ("llm.test", "http://llm.test.evil.test", False),
        ("localhost", "http://127.0.0.1", False),  # names compare exactly, never by what they resolve to
        ("127.0.0.1", "http://2130706433", False),
        ("[::1]:8000", "http://[::1]:8000", True),
        ("bücher.test", "http://xn--bcher-kva.test", True),
    ],
)
def test_a_host_rule_matches_its_host_and_port_exactly(rule: str, url: str, allowed: bool) -> None:
    assert HostRule.parse(rule).matches(httpx.URL(url)) is allowed


@pytest.mark.parametrize("rule", ["", "http://llm.test", "llm.test/v1", "user@llm.test", "llm.test:0", "a b"])
def test_a_host_rule_is_a_host_and_an_optional_port(rule: str) -> None:
    with pytest.raises(ValueError, match="Invalid host"):
        HostRule.parse(rule)


def test_by_default_only_the_default_endpoints_host_and_port_are_allowed() -> None:
    policy = OutboundPolicy(default_base_url="http://127.0.0.1:11434")
    assert policy.refusal(LLMConfig(model="m")) is None
    refused = policy.refusal(LLMConfig(model="m", base_url="http://127.0.0.1:5432"))
    assert refused is not None
    assert refused.type == "host_not_allowed"
    assert OutboundPolicy().refusal(LLMConfig(model="m", base_url="http://llm.test")) is not None


# --- settings --------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ['["llm.test", "127.0.0.1:8080"]', "llm.test, 127.0.0.1:8080"])
def test_allowed_hosts_are_a_json_list_or_comma_separated(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("STARLING_AGENTS_LLM_ALLOWED_HOSTS", value)
    assert AgentsSettings().llm_allowed_hosts == ("llm.test", "127.0.0.1:8080")


def test_named_keys_come_from_a_json_object_and_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = {"main": {"key": SECRET, "host": "llm.test:8443"}}
    monkeypatch.setenv("STARLING_AGENTS_LLM_KEYS", json.dumps(keys))
    settings = AgentsSettings()
    assert settings.llm_keys["main"].key.get_secret_value() == SECRET
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"STARLING_AGENTS_LLM_API_KEY": SECRET}, "STARLING_AGENTS_LLM_BASE_URL"),
        ({"STARLING_AGENTS_LLM_ALLOWED_HOSTS": "llm.test/v1"}, "Invalid host"),
        ({"STARLING_AGENTS_LLM_KEYS": '{"main": {"key": "k", "host": "http://llm.test"}}'}, "Invalid host"),
        ({"STARLING_AGENTS_LLM_BASE_URL": "http://user:pw@llm.test"}, "no credentials"),
    ],
)
def test_settings_that_would_send_a_key_nowhere_or_anywhere_are_refused(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], message: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        AgentsSettings()


def test_the_api_key_setting_is_the_default_key_of_the_default_endpoint() -> None:
    settings = AgentsSettings(llm_api_key=SecretStr(SECRET), llm_base_url="https://llm.test")
    policy = outbound_policy(settings)
    assert policy.headers(httpx.URL("https://llm.test/v1/chat/completions"), None) == {
        "Authorization": f"Bearer {SECRET}"
    }
    assert policy.headers(httpx.URL("https://llm.test:8443/v1/chat/completions"), None) == {}


# --- the agent API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "http://evil.test",
        "http://127.0.0.1",
        "http://localhost:5432",
        "http://[::1]",
        "http://llm.test.evil.test",
    ],
)
async def test_an_llm_agent_whose_host_is_not_allowed_is_422(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory, base_url: str
) -> None:
    app = build_app(app_settings, app_database, llm_allowed_hosts=("llm.test",))
    async with started(app) as served, client_for(served, token_factory(scopes=["agent:admin"])) as admin:
        response = await admin.post("/api/v1/agents", json=llm_agent(base_url=base_url))
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "llm", "config", "base_url"]
    assert error["type"] == "host_not_allowed"
    assert "STARLING_AGENTS_LLM_ALLOWED_HOSTS" in error["msg"]


@pytest.mark.parametrize(
    ("config", "kind"),
    [
        ({"base_url": "http://llm.test", "key_name": "nope"}, "unknown_key"),
        ({"base_url": "http://other.test", "key_name": "main"}, "key_for_another_host"),
    ],
)
async def test_an_llm_agent_whose_key_may_not_go_to_its_host_is_422(
    app_settings: ServiceSettings,
    app_database: BoundDatabase,
    token_factory: TokenFactory,
    config: dict[str, str],
    kind: str,
) -> None:
    app = build_app(app_settings, app_database, llm_allowed_hosts=("llm.test", "other.test"), llm_keys=KEYS)
    async with started(app) as served, client_for(served, token_factory(scopes=["agent:admin"])) as admin:
        response = await admin.post("/api/v1/agents", json=llm_agent(**config))
    assert response.status_code == 422
    assert [(e["loc"][-1], e["type"]) for e in response.json()["detail"]] == [("key_name", kind)]


async def test_the_agent_api_names_a_key_and_never_returns_it(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    app = build_app(app_settings, app_database, llm_allowed_hosts=("llm.test",), llm_keys=KEYS)
    scopes = ["agent:admin", "agent:read"]
    async with started(app) as served, client_for(served, token_factory(scopes=scopes)) as admin:
        agent = llm_agent(base_url="http://llm.test", key_name="main")
        created = await admin.post("/api/v1/agents", json=agent)
        read = await admin.get("/api/v1/agents/remote")
        listed = await admin.get("/api/v1/agents")
        document = await admin.get("/openapi.json")
    assert created.status_code == 201
    assert read.json()["config"] == {"model": "m", "base_url": "http://llm.test", "key_name": "main"}
    assert all(SECRET not in response.text for response in (created, read, listed, document))


async def test_a_run_whose_host_is_no_longer_allowed_fails_without_a_request(
    app_settings: ServiceSettings, app_database: BoundDatabase, token_factory: TokenFactory
) -> None:
    # Two apps on one database: the agent was made under the old allow-list, then run under the new one.
    sent: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]})

    before = build_app(app_settings, app_database, llm_allowed_hosts=("llm.test",), llm_keys=KEYS)
    transport = httpx.MockTransport(upstream)
    after = build_app(
        app_settings, app_database, llm_transport=transport, llm_allowed_hosts=(), llm_keys=KEYS
    )
    scopes = ["agent:admin", "agent:run"]
    async with started(before) as served, client_for(served, token_factory(scopes=scopes)) as admin:
        agent = llm_agent(base_url="http://llm.test", key_name="main")
        assert (await admin.post("/api/v1/agents", json=agent)).status_code == 201
    async with started(after) as served, client_for(served, token_factory(scopes=scopes)) as caller:
        body = {"agent_id": "remote", "input_text": "hello"}
        ran = (await caller.post("/api/v1/agents/run", json=body)).json()
    assert (ran["status"], ran["output"]) == ("failed", None)
    assert "'llm.test:80' is not allowed" in ran["error"]
    assert sent == []
