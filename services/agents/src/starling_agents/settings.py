"""The agents service's settings, read from `STARLING_AGENTS_*` (and the shared `STARLING_*`)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from starling_core.settings import ServiceSettings


class AgentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_AGENTS_")

    service_name: str = "agents"
    # Background worker tasks; 0 leaves background runs queued (useful in tests and for draining).
    workers: int = Field(default=2, ge=0, le=64)
    max_input_chars: int = Field(default=100_000, ge=1)
    llm_api_key: SecretStr | None = None
    # Used by `llm` agents whose config names no `base_url`.
    llm_base_url: str | None = None
    llm_timeout: float = Field(default=30, gt=0)
    # Seconds a process holds a run it works on; it renews the hold every third of that. A run
    # whose holder died is taken by another process once this runs out.
    run_lease: float = Field(default=30, gt=0)
    # Seconds between re-reads of a followed run, which catch what another process did to it.
    events_poll: float = Field(default=1.0, gt=0)
