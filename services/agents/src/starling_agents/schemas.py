"""Request and response models, from which the OpenAPI document is built, and the payloads of the events
this service consumes (the envelope and the topics are core's)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator

from starling_core.events import EventType
from starling_core.events.topics import USERS
from starling_core.validation import as_utc

Kind = Literal["summarizer", "classifier", "llm"]
Status = Literal["queued", "running", "completed", "failed", "cancelled"]

AGENT_ID_PATTERN = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
# Path segments of the runs API under /api/v1/agents/: an agent with one of these ids would be hidden.
RESERVED_AGENT_IDS = frozenset({"run", "runs"})


# --- agent configs, one per kind -------------------------------------------------------------------


class SummarizerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_sentences: int = Field(default=3, ge=1, le=50)


Keyword = Annotated[str, Field(min_length=1, max_length=100)]


class ClassifierConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Label -> keywords; the label order is the tie-break order.
    labels: dict[Annotated[str, Field(min_length=1, max_length=100)], list[Keyword]] = Field(min_length=1)


class LLMConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    base_url: str | None = Field(default=None, min_length=1, max_length=500)
    system_prompt: str | None = Field(default=None, max_length=20_000)
    temperature: float | None = Field(default=None, ge=0, le=2)
    # The name of a key in STARLING_AGENTS_LLM_KEYS: the key itself stays in the settings.
    key_name: str | None = Field(default=None, min_length=1, max_length=100)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        # Checked by the client that will send to it, so an agent cannot be saved that can never run.
        return None if value is None else http_url(value)


def http_url(value: str) -> str:
    """`value` if httpx can send to it: absolute, http or https, with no credentials in it."""
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"Invalid URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("URL should be absolute, with an http or https scheme")
    if url.userinfo:
        raise ValueError("URL should carry no credentials: an llm agent names its key in key_name")
    return value


class _AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=64, pattern=AGENT_ID_PATTERN)
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=500)

    @field_validator("agent_id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        if value in RESERVED_AGENT_IDS:
            raise ValueError(f"{value!r} is reserved by the runs API")
        return value


class SummarizerAgentIn(_AgentIn):
    kind: Literal["summarizer"]
    config: SummarizerConfig = Field(default_factory=SummarizerConfig)


class ClassifierAgentIn(_AgentIn):
    kind: Literal["classifier"]
    config: ClassifierConfig


class LLMAgentIn(_AgentIn):
    kind: Literal["llm"]
    config: LLMConfig


AnyAgentIn = Annotated[SummarizerAgentIn | ClassifierAgentIn | LLMAgentIn, Field(discriminator="kind")]


class AgentCreate(RootModel[AnyAgentIn]):
    """A new agent; `config` is validated by the rules of its `kind`."""


def parse_config(kind: str, config: dict[str, Any]) -> SummarizerConfig | ClassifierConfig | LLMConfig:
    """The stored config of an agent of `kind`, as its typed model."""
    if kind == "summarizer":
        return SummarizerConfig.model_validate(config)
    if kind == "classifier":
        return ClassifierConfig.model_validate(config)
    if kind == "llm":
        return LLMConfig.model_validate(config)
    raise ValueError(f"Unknown agent kind {kind!r}")


class AgentSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    agent_id: str
    name: str
    description: str
    kind: Kind


class AgentOut(AgentSummary):
    config: dict[str, Any]
    created_at: datetime


# --- runs ------------------------------------------------------------------------------------------


class RunIn(BaseModel):
    agent_id: str = Field(min_length=1, max_length=64)
    input_text: str = Field(min_length=1)
    background: bool = False


class RunForm(BaseModel):
    """`POST /api/v1/agents/run` as `multipart/form-data`: the input is an uploaded UTF-8 text file."""

    agent_id: str = Field(min_length=1, max_length=64)
    background: bool = False
    file: bytes = Field(json_schema_extra={"contentMediaType": "text/plain"})


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    run_id: str
    agent_id: str
    status: Status
    output: str | None
    token_usage: int
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class RunsQuery(BaseModel):
    status: Status | None = None
    agent_id: str | None = Field(default=None, min_length=1, max_length=64)
    since: datetime | None = None
    limit: int = Field(50, ge=1, le=200)
    cursor: str | None = None

    @field_validator("since")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


# --- events consumed: the users service's, on `users.users` ---------------------------------------------


class UserDeleted(BaseModel):
    """The payload of `user.deleted` as this service reads it: whose runs end."""

    user_id: str = Field(min_length=1, max_length=255)


USER_DELETED = EventType("user.deleted", USERS, UserDeleted)
