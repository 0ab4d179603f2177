"""The service's settings: the shared ones, and its own from `STARLING_ASSESSMENTS_*`."""

from __future__ import annotations

from pydantic_settings import SettingsConfigDict

from starling_core.settings import ServiceSettings


class AssessmentsSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="STARLING_ASSESSMENTS_")

    service_name: str = "assessments"
