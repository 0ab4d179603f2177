"""The chat-completions gateway against respx: requests, retries and failure mapping.

The client is the real one from `starling_core.http.create_http_client` (its RetryTransport over
httpx's own transport); respx answers below it, so retries run exactly as they do in production.
"""

from __future__ import annotations

import json

import httpx
import respx
from pydantic import SecretStr

from starling_agents.gateways import ChatCompletionsGateway
from starling_agents.runners import Outcome
from starling_agents.schemas import LLMConfig
from starling_core.http import create_http_client

CONFIG = LLMConfig(model="tiny-1", base_url="http://llm.test", system_prompt="Be brief.")
RETRIES = 2


def completion(content: str = "Hello there", total_tokens: int = 17) -> httpx.Response:
    body = {
        "choices": [{"message": {"role": "assistant", "content": content}}],
        "usage": {"total_tokens": total_tokens},
    }
    return httpx.Response(200, json=body)


async def complete(
    *answers: httpx.Response | Exception,
    config: LLMConfig = CONFIG,
    default_base_url: str | None = None,
) -> tuple[Outcome, respx.Route]:
    """Run one completion against an endpoint giving `answers` in turn (the last one repeats)."""
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    with respx.mock(assert_all_called=False) as router:
        route = router.post(url__regex=r"/v1/chat/completions$").mock(
            side_effect=[*answers, *[answers[-1]] * (RETRIES + 1)]
        )
        async with create_http_client(retries=RETRIES, sleep=sleep, retry_non_idempotent=True) as client:
            gateway = ChatCompletionsGateway(
                client, api_key=SecretStr("sk-test"), default_base_url=default_base_url
            )
            return await gateway.complete(config, "What is Starling?"), route


async def test_a_completion_gives_the_output_and_the_reported_usage() -> None:
    outcome, upstream = await complete(completion("Starling is a monorepo.", 42))
    assert outcome == Outcome(output="Starling is a monorepo.", token_usage=42)
    request = upstream.calls[0].request
    assert str(request.url) == "http://llm.test/v1/chat/completions"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {
        "model": "tiny-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "What is Starling?"},
        ],
    }


async def test_the_settings_base_url_serves_agents_that_name_none() -> None:
    _, upstream = await complete(
        completion(), config=LLMConfig(model="tiny-1"), default_base_url="http://fallback.test/"
    )
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
    outcome, upstream = await complete(completion(), config=LLMConfig(model="tiny-1"))
    assert outcome.error is not None
    assert "STARLING_AGENTS_LLM_BASE_URL" in outcome.error
    assert upstream.call_count == 0
