"""The envelope and the contract of spec/api.md ("Events")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from starling_core.events import Event, EventType, RawEvent
from starling_core.events import topics as t


def test_the_envelope_is_the_six_fields_of_the_spec() -> None:
    event = t.RUN_FINISHED.new("run-1", t.RunFinished(run_id="run-1", agent_id="a", owner="u", status="done"))
    body = json.loads(event.to_json())
    assert set(body) == {"id", "type", "key", "occurred_at", "version", "payload"}
    assert (body["type"], body["key"], body["version"]) == ("run.finished", "run-1", 1)
    assert body["payload"]["run_id"] == "run-1"
    assert len(body["id"]) == 36


def test_times_are_kept_in_utc() -> None:
    local = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    event = t.USER_DELETED.new("u1", t.UserEvent(user_id="u1"), occurred_at=local)
    assert event.occurred_at == local
    assert event.occurred_at.tzinfo == UTC


def test_a_typed_parse_validates_the_payload_and_a_raw_parse_does_not() -> None:
    raw = Event[dict[str, object]](type="user.deleted", key="u1", payload={"unexpected": 1}).to_json()
    assert RawEvent.model_validate_json(raw).payload == {"unexpected": 1}
    with pytest.raises(ValidationError):
        t.USER_DELETED.parse(raw)


def test_topics_and_types_are_the_specs() -> None:
    assert (t.ORDERS, t.AGENTS_RUNS, t.USERS, t.ASSESSMENTS) == (
        "orders",
        "agents.runs",
        "users.users",
        "assessments.assessments",
    )
    kinds: list[EventType[Any]] = [
        t.ORDER_PLACED,
        t.RUN_FINISHED,
        t.USER_DELETED,
        t.USER_CHANGED,
        t.ASSESSMENT_COMPLETED,
    ]
    assert [(kind.name, kind.topic) for kind in kinds] == [
        ("order.placed", "orders"),
        ("run.finished", "agents.runs"),
        ("user.deleted", "users.users"),
        ("user.changed", "users.users"),
        ("assessment.completed", "assessments.assessments"),
    ]
    assert t.dead_letter_topic("orders") == "orders.dlq"
