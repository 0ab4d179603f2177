"""The outbound client of `llm` agents: an OpenAI-compatible chat-completions endpoint over httpx.

The httpx client comes from `starling_core.http.create_http_client` with `retry_non_idempotent=True`:
a chat completion has no side effect beyond its cost, so a POST answered 429/5xx (or cut off) is
sent again, a bounded number of times with backoff. Every failure becomes a failed `Outcome` with an
`error` that says what went wrong; nothing raises out of `complete`.

Where a request may go and which key it carries is the `OutboundPolicy`'s to say (outbound.py), asked
before every request: a refused one fails the run unsent. Redirects are never followed, so a key
never travels on to wherever an endpoint points.
"""

from __future__ import annotations

import json

import httpx
from pydantic import BaseModel, ValidationError

from starling_agents.outbound import OutboundPolicy
from starling_agents.runners import Outcome
from starling_agents.schemas import LLMConfig


class _Message(BaseModel):
    content: str


class _Choice(BaseModel):
    message: _Message


class _Usage(BaseModel):
    total_tokens: int = 0


class _Completion(BaseModel):
    choices: list[_Choice]
    usage: _Usage | None = None


class ChatCompletionsGateway:
    def __init__(self, client: httpx.AsyncClient, policy: OutboundPolicy) -> None:
        self.client = client
        self.policy = policy

    async def complete(self, config: LLMConfig, text: str) -> Outcome:
        url = self.policy.endpoint(config)
        if url is None:
            return _failed("No LLM endpoint: set the agent's config.base_url or STARLING_AGENTS_LLM_BASE_URL")
        refusal = self.policy.refusal(config)
        if refusal is not None:
            return _failed(refusal.message)
        messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
        messages.append({"role": "user", "content": text})
        payload: dict[str, object] = {"model": config.model, "messages": messages}
        if config.temperature is not None:
            payload["temperature"] = config.temperature
        headers = self.policy.headers(url, config.key_name)
        try:
            response = await self.client.post(url, json=payload, headers=headers, follow_redirects=False)
        except httpx.TimeoutException:
            return _failed(f"LLM endpoint timed out ({url})")
        except httpx.TransportError as exc:
            return _failed(f"LLM endpoint unreachable ({url}): {type(exc).__name__}")
        if response.is_redirect:
            return _failed(f"LLM endpoint answered HTTP {response.status_code}: redirects are not followed")
        if response.is_error:
            # Retryable statuses reach here only once the retries are spent.
            return _failed(f"LLM endpoint answered HTTP {response.status_code}")
        try:
            completion = _Completion.model_validate(response.json())
        except (json.JSONDecodeError, UnicodeDecodeError, ValidationError):
            return _failed("LLM endpoint sent a malformed response: expected choices[0].message.content")
        if not completion.choices:
            return _failed("LLM endpoint sent a malformed response: no choices")
        usage = completion.usage.total_tokens if completion.usage else 0
        return Outcome(output=completion.choices[0].message.content, token_usage=usage)


def _failed(error: str) -> Outcome:
    return Outcome(output=None, token_usage=0, error=error)
