"""Core's own tables. Their history is core's (`starling_core/versions/`, Alembic branch `starling_core`),
applied by every service beside its own (see `starling_core.migrations`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from starling_core.db import new_metadata

metadata = new_metadata()

# The rate limiter's shared counts (`STARLING_RATE_LIMIT_BACKEND=database`).
rate_limit_counters = Table(
    "rate_limit_counters",
    metadata,
    # "<window seconds>s:<caller>", so that a changed rate never adds to the old rate's counts
    Column("key", String(255), primary_key=True),
    Column("window_start", BigInteger, primary_key=True),  # seconds since the epoch
    Column("hits", Integer, nullable=False),
)
