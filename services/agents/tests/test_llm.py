"""The chat-completions gateway against httpx.MockTransport: requests, retries and failure mapping."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
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


class Upstream:
    """Answers each call with the next of `answers` (the last one repeats) and records the requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer


async def complete(
    upstream: Callable[[httpx.Request], httpx.Response],
    config: LLMConfig = CONFIG,
    *,
    default_base_url: str | None = None,
) -> Outcome:
    delays: list[float] = []

    async def sleep(seconds: float) -> None:
        delays.append(seconds)

    async with create_http_client(
        transport=httpx.MockTransport(upstream), retries=RETRIES, sleep=sleep, retry_non_idempotent=True
    ) as client:
        gateway = ChatCompletionsGateway(
            client, api_key=SecretStr("sk-test"), default_base_url=default_base_url
        )
        return await gateway.complete(config, "What is Starling?")


async def test_a_completion_gives_the_output_and_the_reported_usage() -> None:
    upstream = Upstream(completion("Starling is a monorepo.", 42))
    outcome = await complete(upstream)
    assert outcome == Outcome(output="Starling is a monorepo.", token_usage=42)
    request = upstream.requests[0]
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
    upstream = Upstream(completion())
    await complete(upstream, LLMConfig(model="tiny-1"), default_base_url="http://fallback.test/")
    assert str(upstream.requests[0].url) == "http://fallback.test/v1/chat/completions"


async def test_429_and_5xx_are_retried_until_an_answer() -> None:
    upstream = Upstream(httpx.Response(429), httpx.Response(503), completion())
    outcome = await complete(upstream)
    assert outcome.error is None
    assert len(upstream.requests) == 3


async def test_an_upstream_error_after_the_retries_fails_the_run() -> None:
    upstream = Upstream(httpx.Response(503))
    outcome = await complete(upstream)
    assert outcome.error == "LLM endpoint answered HTTP 503"
    assert outcome.output is None
    assert len(upstream.requests) == RETRIES + 1


async def test_a_client_error_is_not_retried() -> None:
    upstream = Upstream(httpx.Response(401))
    assert (await complete(upstream)).error == "LLM endpoint answered HTTP 401"
    assert len(upstream.requests) == 1


async def test_connection_errors_are_retried_then_reported() -> None:
    upstream = Upstream(httpx.ConnectError("refused"))
    outcome = await complete(upstream)
    assert outcome.error is not None
    assert outcome.error.startswith("LLM endpoint unreachable")
    assert len(upstream.requests) == RETRIES + 1


async def test_a_timeout_is_reported_as_one() -> None:
    outcome = await complete(Upstream(httpx.ReadTimeout("slow")))
    assert outcome.error is not None
    assert "timed out" in outcome.error


async def test_a_malformed_response_fails_the_run() -> None:
    for answer in (
        httpx.Response(200, content=b"not json"),
        httpx.Response(200, json={"choices": [{"message": {}}]}),
        httpx.Response(200, json={"choices": []}),
    ):
        outcome = await complete(Upstream(answer))
        assert outcome.error is not None
        assert "malformed" in outcome.error


async def test_missing_usage_counts_zero_tokens() -> None:
    outcome = await complete(
        Upstream(httpx.Response(200, json={"choices": [{"message": {"content": "hi"}}]}))
    )
    assert outcome == Outcome(output="hi", token_usage=0)


async def test_no_endpoint_configured_fails_without_a_request() -> None:
    upstream = Upstream(completion())
    outcome = await complete(upstream, LLMConfig(model="tiny-1"))
    assert outcome.error is not None
    assert "STARLING_AGENTS_LLM_BASE_URL" in outcome.error
    assert upstream.requests == []
