"""The outbound client of `llm` agents: an OpenAI-compatible chat-completions endpoint over httpx.

The httpx client comes from `starling_core.http.create_http_client` with `retry_non_idempotent=True`:
a chat completion has no side effect beyond its cost, so a POST answered 429/5xx (or cut off) is
sent again, a bounded number of times with backoff. Every failure becomes a failed `Outcome` with an
`error` that says what went wrong; nothing raises out of `complete`.
"""

from __future__ import annotations

import json

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

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
    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        api_key: SecretStr | None = None,
        default_base_url: str | None = None,
    ) -> None:
        self.client = client
        self.api_key = api_key
        self.default_base_url = default_base_url

    async def complete(self, config: LLMConfig, text: str) -> Outcome:
        base_url = config.base_url or self.default_base_url
        if not base_url:
            return _failed("No LLM endpoint: set the agent's config.base_url or STARLING_AGENTS_LLM_BASE_URL")
        messages = [{"role": "system", "content": config.system_prompt}] if config.system_prompt else []
        messages.append({"role": "user", "content": text})
        payload: dict[str, object] = {"model": config.model, "messages": messages}
        if config.temperature is not None:
            payload["temperature"] = config.temperature
        headers = {"Authorization": f"Bearer {self.api_key.get_secret_value()}"} if self.api_key else {}
        url = f"{base_url.rstrip('/')}/v1/chat/completions"
        try:
            response = await self.client.post(url, json=payload, headers=headers)
        except httpx.TimeoutException:
            return _failed(f"LLM endpoint timed out ({url})")
        except httpx.TransportError as exc:
            return _failed(f"LLM endpoint unreachable ({url}): {type(exc).__name__}")
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
