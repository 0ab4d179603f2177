"""Request and response models, from which the OpenAPI document is built, and the payloads of the events
this service consumes (the envelope and the topics are core's)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, Field, WithJsonSchema, field_validator, model_validator

from starling_core.events import EventType
from starling_core.events.topics import AGENTS_RUNS, ORDERS
from starling_core.validation import as_utc

MAX_ORDERS_PER_REQUEST = 1000

# pydantic documents a Decimal as "any number or any string"; this says what a price really accepts
# (at most 10 digits before the point and 2 after), so clients and fuzzers send prices that fit.
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=12, decimal_places=2),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": 9_999_999_999.99, "multipleOf": 0.01},
                {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,2})?$"},
            ],
            "title": "Unit Price",
        },
        mode="validation",
    ),
]


class OrderItemIn(BaseModel):
    product_id: str = Field(min_length=1, max_length=100)
    title: str = Field(min_length=1, max_length=300)
    quantity: int = Field(ge=1, le=1_000_000)
    unit_price: Price


class OrderIn(BaseModel):
    order_id: str = Field(min_length=1, max_length=100)
    created_at: datetime
    items: list[OrderItemIn] = Field(min_length=1, max_length=1000)

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return as_utc(value)


class OrdersIn(BaseModel):
    orders: list[OrderIn] = Field(min_length=1, max_length=MAX_ORDERS_PER_REQUEST)


class IngestOut(BaseModel):
    accepted: int
    duplicates: int


class TimeRange(BaseModel):
    """`since` is inclusive, `until` exclusive; either may be left open."""

    since: datetime | None = None
    until: datetime | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)

    @model_validator(mode="after")
    def _ordered(self) -> TimeRange:
        if self.since is not None and self.until is not None and self.until < self.since:
            raise ValueError("until must not be before since")
        return self


class TopProductsQuery(TimeRange):
    count: int = Field(10, ge=1, le=100)


class TopProductOut(BaseModel):
    product_id: str
    title: str
    rank: int
    cnt_bought: int


class ExtractionOut(BaseModel):
    orders_count: int = Field(description="orders stored by this run that were not stored before")
    cursor: str | None = Field(description="the checkpoint the next run resumes from")


# What `agent_runs.token_usage` (BIGINT) holds; one more overflowed in the driver, a 500.
MAX_TOKEN_USAGE = 2**63 - 1


class AgentRunIn(BaseModel):
    """A run as the agents service's runs API returns it (only what the report needs is kept)."""

    run_id: str = Field(min_length=1, max_length=100)
    agent_id: str = Field(min_length=1, max_length=100)
    status: str = Field(max_length=20)
    token_usage: int | None = Field(default=None, ge=0, le=MAX_TOKEN_USAGE)
    created_at: datetime
    finished_at: datetime | None = None

    @field_validator("created_at", "finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


class AgentUsageOut(BaseModel):
    agent_id: str
    runs: int
    token_usage: int


# --- events consumed -----------------------------------------------------------------------------------


class RunFinishedIn(BaseModel):
    """`run.finished` as this service reads it: what the usage report needs. The payload's `owner` is
    not read, so it is never stored."""

    run_id: str = Field(min_length=1, max_length=100)
    agent_id: str = Field(min_length=1, max_length=100)
    status: str = Field(max_length=20)
    token_usage: int | None = Field(default=None, ge=0, le=MAX_TOKEN_USAGE)
    finished_at: datetime | None = None

    @field_validator("finished_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else as_utc(value)


# An order placed upstream, validated as `POST /api/v1/orders` validates one (the same model).
ORDER_PLACED = EventType("order.placed", ORDERS, OrderIn)
RUN_FINISHED = EventType("run.finished", AGENTS_RUNS, RunFinishedIn)
