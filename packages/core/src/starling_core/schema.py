"""Core's own tables. Their history is core's (`starling_core/versions/`, Alembic branch `starling_core`),
applied by every service beside its own (see `starling_core.migrations`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Table, Text

from starling_core.db import UTCDateTime, new_metadata

metadata = new_metadata()

# The rate limiter's shared state (`STARLING_RATE_LIMIT_BACKEND=database`): per caller and rate, the
# theoretical arrival time of its next request, in microseconds since the epoch (see ratelimit.py).
rate_limit_buckets = Table(
    "rate_limit_buckets",
    metadata,
    Column("key", String(255), primary_key=True),  # "<limit>/<window>s:<caller>"
    Column("tat", BigInteger, nullable=False),
)

# Events a service published inside its write transactions (`starling_core.events.outbox`), in the order
# they were written; the relay delivers them to the broker and marks them sent.
outbox_events = Table(
    "outbox_events",
    metadata,
    # SQLite numbers only an INTEGER PRIMARY KEY by itself
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("topic", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("type", String(255), nullable=False),
    Column("envelope", Text, nullable=False),  # the message value, JSON, exactly as it is sent
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", String(500), nullable=True),
    Index("ix_outbox_events_sent_at_id", "sent_at", "id"),
)

# Events a consumer group has handled (`starling_core.events.inbox`): written in the handler's own
# transaction, so a redelivered event is recognised and skipped.
inbox_events = Table(
    "inbox_events",
    metadata,
    Column("consumer", String(255), primary_key=True),
    Column("event_id", String(36), primary_key=True),
    Column("topic", String(255), nullable=False),
    Column("handled_at", UTCDateTime, nullable=False),
    Index("ix_inbox_events_handled_at", "handled_at"),
)

# The users whose tokens issued before `revoked_at` are refused (`starling_core.revocations`), learned
# from the users service's `user.changed` and `user.deleted` events: one row per user, the latest kept.
# Each process keeps them all in memory and reads the rows recorded since it last looked.
token_revocations = Table(
    "token_revocations",
    metadata,
    Column("user_id", String(255), primary_key=True),
    Column("revoked_at", UTCDateTime, nullable=False),
    Column("reason", String(20), nullable=False),  # the event's type: user.changed or user.deleted
    # when a consumer wrote it: every process reads what was written since it last looked
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_token_revocations_recorded_at", "recorded_at"),
)
