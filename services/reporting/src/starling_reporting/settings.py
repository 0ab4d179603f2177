"""The reporting service's settings, read from `STARLING_REPORTING_*` (and the shared `STARLING_*`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from starling_core.settings import ServiceSettings


class ReportingSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_REPORTING_")

    service_name: str = "reporting"
    agents_url: str = "http://127.0.0.1:8002"
    # Extraction is off while no upstream orders API is configured.
    upstream_url: str | None = None
    # Seconds between periodic extractions run by the lifespan; None runs none.
    extraction_interval: float | None = Field(default=None, gt=0)
    upstream_page_size: int = Field(default=100, ge=1, le=1000)
