"""The agents service's settings, read from `STARLING_AGENTS_*` (and the shared `STARLING_*`)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from starling_agents.outbound import DEFAULT_KEY, HostRule, LLMKey
from starling_agents.schemas import http_url
from starling_core.settings import ServiceSettings


class AgentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_AGENTS_")

    service_name: str = "agents"
    # Background worker tasks; 0 leaves background runs queued (useful in tests and for draining).
    workers: int = Field(default=2, ge=0, le=64)
    max_input_chars: int = Field(default=100_000, ge=1)
    # The key named `default`: sent only to the host and port of `llm_base_url`, which it needs.
    llm_api_key: SecretStr | None = None
    # Used by `llm` agents whose config names no `base_url`.
    llm_base_url: str | None = None
    # Hosts (`host` or `host:port`) llm agents may call, as a JSON list or separated by commas; unset:
    # the host and port of `llm_base_url` only, and none without it. An empty value allows none.
    llm_allowed_hosts: Annotated[tuple[str, ...] | None, NoDecode] = None
    # Named keys, a JSON object: {"<name>": {"key": "...", "host": "<host or host:port>"}}. An agent
    # names one in `config.key_name`; it is sent only to its host.
    llm_keys: dict[str, LLMKey] = Field(default_factory=dict)
    llm_timeout: float = Field(default=30, gt=0)
    # Seconds a process holds a run it works on; it renews the hold every third of that. A run
    # whose holder died is taken by another process once this runs out.
    run_lease: float = Field(default=30, gt=0)
    # Seconds between re-reads of a followed run, which catch what another process did to it.
    events_poll: float = Field(default=1.0, gt=0)
    # Seconds a run's WebSocket may go without sending anything before it is closed (4408).
    events_idle_timeout: float = Field(default=300, gt=0)

    @field_validator("llm_base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return None if value is None else http_url(value)

    @field_validator("llm_allowed_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        if value.strip().startswith("["):
            return json.loads(value)
        return [part.strip() for part in value.split(",") if part.strip()]

    @field_validator("llm_allowed_hosts")
    @classmethod
    def _hosts(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for entry in value or ():
            HostRule.parse(entry)
        return value

    @model_validator(mode="after")
    def _default_key_has_a_host(self) -> AgentsSettings:
        if self.llm_api_key is not None and not self.llm_base_url:
            raise ValueError(
                "STARLING_AGENTS_LLM_API_KEY is sent only to the host of STARLING_AGENTS_LLM_BASE_URL: set "
                "that too, or name the key with its host in STARLING_AGENTS_LLM_KEYS"
            )
        if self.llm_api_key is not None and DEFAULT_KEY in self.llm_keys:
            raise ValueError(
                f"STARLING_AGENTS_LLM_KEYS names a key {DEFAULT_KEY!r}: "
                "that name is STARLING_AGENTS_LLM_API_KEY's"
            )
        return self
