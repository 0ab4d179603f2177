"""The bench's events part on a few events: its report's shape and its accounting, not its timings."""

from __future__ import annotations

import json
from pathlib import Path

from starling_devtools.bench import events
from starling_devtools.bench.__main__ import parse_args


def test_the_events_part_reports_both_pipelines_with_every_event_handled_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'events.db'}"

    measured = events.measure("sqlite", url, count=20, samples=3, rounds=2)

    assert measured.expected == 1 + 3 + 2 * 20  # the warm-up, the latency samples, the rounds
    assert measured.delivered_once
    assert measured.raw_received == measured.raw_expected == 1 + 3 + 2 * 20
    assert (len(measured.latency_ms), len(measured.raw_latency_ms)) == (3, 3)
    assert (len(measured.per_second), len(measured.raw_per_second)) == (2, 2)
    latency, throughput = events.figures({"sqlite": measured})
    assert (latency.part, latency.unit, throughput.unit) == ("events", "ms", "events/s")
    assert latency.ratio is not None
    assert throughput.ratio is not None
    assert "every event handled once" in throughput.detail
    recorded = json.loads(json.dumps(events.measurements({"sqlite": measured})))
    assert recorded["sqlite"]["delivered_once"] is True
    assert recorded["sqlite"]["distinct_handled"] == measured.expected


def test_an_event_handled_twice_is_reported_as_not_once() -> None:
    measured = events.Measured("sqlite", count=2, rounds=1, expected=2, handled={"a": 1, "b": 2})
    measured.latency_ms = measured.raw_latency_ms = [1.0]
    measured.per_second = measured.raw_per_second = [1.0]

    assert not measured.delivered_once
    assert "NOT once" in events.figures({"sqlite": measured})[1].detail


def test_the_events_part_runs_by_default_and_on_postgres_when_asked() -> None:
    options = parse_args(["--only", "events", "--events", "10", "--databases", "postgres"])

    assert "events" in parse_args([]).only
    assert (options.only, options.events, options.databases) == (("events",), 10, ("postgres",))
