"""Core's own tables. Their history is core's (`starling_core/versions/`, Alembic branch `starling_core`),
applied by every service beside its own (see `starling_core.migrations`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table

from starling_core.db import new_metadata

metadata = new_metadata()

# The rate limiter's shared state (`STARLING_RATE_LIMIT_BACKEND=database`): per caller and rate, the
# theoretical arrival time of its next request, in microseconds since the epoch (see ratelimit.py).
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("key", String(255), primary_key=True),  # "<limit>/<window>s:<caller>"
    Column("tat", BigInteger, nullable=False),
)
