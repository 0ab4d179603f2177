"""The chat-completions gateway against respx: requests, retries, failure mapping, and where keys go.

The client is the real one from `starling_core.http.create_http_client` (its RetryTransport over
httpx's own transport); respx answers below it, so retries run exactly as they do in production.
Every host answers, so a request the policy should have stopped is seen, with its headers.
"""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from pydantic import SecretStr

from starling_agents.gateways import ChatCompletionsGateway
from starling_agents.outbound import LLMKey, OutboundPolicy
from starling_agents.runners import Outcome
from starling_agents.schemas import LLMConfig
from starling_core.http import create_http_client

CONFIG = LLMConfig(model="tiny-1", base_url="http://llm.test", system_prompt="Be brief.", key_name="main")
RETRIES = 2
KEY, DEFAULT_KEY = "sk-test", "sk-default"
LOOPBACK = ["http://127.0.0.1:8080", "http://localhost", "http://[::1]:11434"]
# Loopback is allowed here on purpose: a key must stay with its own host even among allowed ones.
POLICY = OutboundPolicy(
    allowed_hosts=["llm.test", "fallback.test", "127.0.0.1:8080", "localhost", "[::1]"],
    keys={
        "main": LLMKey(key=SecretStr(KEY), host="llm.test"),
        "default": LLMKey(key=SecretStr(DEFAULT_KEY), host="llm.test"),
    },
)


def completion(content: str = "Hello there", total_tokens: int = 17) -> httpx.Response:
    body = {
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"total_tokens": total_tokens},
    }
    return httpx.Response(200, json=body)


async def complete(
    *answers: httpx.Response | Exception,
    config: LLMConfig = CONFIG,
    policy: OutboundPolicy = POLICY,
) -> tuple[Outcome, respx.Route]:
    """Run one completion against endpoints giving `answers` in turn (the last one repeats).

    Every host answers, so the route's calls are every request that was sent, wherever it went.
    """
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with respx.mock(assert_all_called=False) as router:
        route = router.route().mock(side_effect=[*answers, *[answers[-1]] * (RETRIES + 1)])
        async with create_http_client(retries=RETRIES, sleep=sleep, retry_non_idempotent=True) as client:
            return await ChatCompletionsGateway(client, policy).complete(config, "What is Starling?"), route


async def test_a_completion_gives_the_output_and_the_reported_usage() -> None:
    outcome, upstream = await complete(completion("Starling is a monorepo.", 42))
    assert outcome == Outcome(output="Starling is a monorepo.", token_usage=42)
    request = upstream.calls[0].request
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["Authorization"] == f"Bearer {KEY}"
    assert json.loads(request.content) == {
        "model": "tiny-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is Starling?"},
        ],
    }


async def test_the_settings_base_url_serves_agents_that_name_none() -> None:
    policy = OutboundPolicy(default_base_url="http://fallback.test/")  # its host is allowed by default
    _, upstream = await complete(completion(), config=LLMConfig(model="tiny-1"), policy=policy)
    assert str(upstream.calls[0].request.url) == "http://fallback.test/v1/chat/completions"


async def test_429_and_5xx_are_retried_until_an_answer() -> None:
    outcome, upstream = await complete(httpx.Response(429), httpx.Response(503), completion())
    assert outcome.error is None
    assert upstream.call_count == 3


async def test_an_upstream_error_after_the_retries_fails_the_run() -> None:
    outcome, upstream = await complete(httpx.Response(503))
    assert outcome.error == "LLM endpoint answered HTTP 503"
    assert outcome.output is None
    assert upstream.call_count == RETRIES + 1


async def test_a_client_error_is_not_retried() -> None:
    outcome, upstream = await complete(httpx.Response(401))
    assert outcome.error == "LLM endpoint answered HTTP 401"
    assert upstream.call_count == 1


async def test_connection_errors_are_retried_then_reported() -> None:
    outcome, upstream = await complete(httpx.ConnectError("refused"))
    assert outcome.error is not None
    assert outcome.error.startswith("LLM endpoint unreachable")
    assert upstream.call_count == RETRIES + 1


async def test_a_timeout_is_reported_as_one() -> None:
    outcome, _ = await complete(httpx.ReadTimeout("slow"))
    assert outcome.error is not None
    assert "timed out" in outcome.error


async def test_a_malformed_response_fails_the_run() -> None:
    for answer in (
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"choices": [{"message": {}}]}),
        httpx.Response(200, json={"choices": []}),
    ):
        outcome, _ = await complete(answer)
        assert outcome.error is not None
        assert "malformed" in outcome.error


async def test_missing_usage_counts_zero_tokens() -> None:
    outcome, _ = await complete(httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]}))
    assert outcome == Outcome(output="hi", token_usage=0)


async def test_no_endpoint_configured_fails_without_a_request() -> None:
    nowhere = OutboundPolicy()
    outcome, upstream = await complete(completion(), config=LLMConfig(model="tiny-1"), policy=nowhere)
    assert outcome.error is not None
    assert "STARLING_AGENTS_LLM_BASE_URL" in outcome.error
    assert upstream.call_count == 0


# --- where requests and keys go ---------------------------------------------------------------------


async def test_an_agent_without_a_key_name_gets_the_default_key_on_its_host_only() -> None:
    _, own_host = await complete(completion(), config=LLMConfig(model="m", base_url="http://llm.test"))
    _, other_host = await complete(completion(), config=LLMConfig(model="m", base_url="http://fallback.test"))
    assert own_host.calls[0].request.headers["Authorization"] == f"Bearer {DEFAULT_KEY}"
    assert "Authorization" not in other_host.calls[0].request.headers


@pytest.mark.parametrize("base_url", LOOPBACK)
async def test_no_key_goes_to_an_allowed_loopback_endpoint(base_url: str) -> None:
    outcome, upstream = await complete(completion(), config=LLMConfig(model="m", base_url=base_url))
    assert outcome.error is None  # the host is allowed: the request went, without a key
    [call] = upstream.calls
    assert call.request.url.host in base_url
    assert "Authorization" not in call.request.headers


@pytest.mark.parametrize("base_url", LOOPBACK)
async def test_an_agent_naming_a_key_for_another_host_fails_without_a_request(base_url: str) -> None:
    outcome, upstream = await complete(completion(), config=CONFIG.model_copy(update={"base_url": base_url}))
    assert outcome.error is not None
    assert "may be sent only to 'llm.test'" in outcome.error
    assert upstream.call_count == 0


@pytest.mark.parametrize("base_url", ["http://evil.test", "http://169.254.169.254", "http://2130706433"])
async def test_a_host_off_the_allow_list_fails_without_a_request(base_url: str) -> None:
    outcome, upstream = await complete(completion(), config=LLMConfig(model="m", base_url=base_url))
    assert outcome.error is not None
    assert "is not allowed" in outcome.error
    assert upstream.call_count == 0


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_not_followed_with_the_key(status: int) -> None:
    moved = httpx.Response(status, headers={"Location": "http://127.0.0.1:8080/v1/chat/completions"})
    outcome, upstream = await complete(moved)
    assert outcome.error == f"LLM endpoint answered HTTP {status}: redirects are not followed"
    assert [str(call.request.url.host) for call in upstream.calls] == ["llm.test"]


async def test_a_key_bound_to_a_port_goes_to_that_port_only() -> None:
    policy = OutboundPolicy(
        allowed_hosts=["llm.test"], keys={"main": LLMKey(key=SecretStr(KEY), host="llm.test:8443")}
    )
    on_port = CONFIG.model_copy(update={"base_url": "https://llm.test:8443"})
    outcome, upstream = await complete(completion(), config=on_port, policy=policy)
    assert outcome.error is None
    assert upstream.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"
    outcome, upstream = await complete(completion(), config=CONFIG, policy=policy)  # port 80
    assert outcome.error is not None
    assert upstream.call_count == 0
