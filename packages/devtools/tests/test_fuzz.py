"""The fuzz run's own logic: which passes run, how schemathesis is called, how its report is read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from starling_devtools import fuzz


def test_the_admin_gets_every_phase_last_and_the_others_a_smaller_share_first() -> None:
    passes = fuzz.plan(["users"], ["admin", "user", "anonymous"], 30)
    assert [(item.caller, item.max_examples, "stateful" in item.phases) for item in passes] == [
        ("user", 6, False),
        ("anonymous", 6, False),
        ("admin", 30, True),
    ]


def test_only_the_admin_gets_the_coverage_phase_unless_every_phase_is_asked() -> None:
    short = fuzz.plan(["users"], ["admin", "user", "anonymous"], 15)
    nightly = fuzz.plan(["users"], ["admin", "user", "anonymous"], 15, every_phase=True)
    assert [(item.caller, "coverage" in item.phases) for item in short] == [
        ("user", False),
        ("anonymous", False),
        ("admin", True),
    ]
    assert all("coverage" in item.phases and "fuzzing" in item.phases for item in nightly)


def test_a_small_budget_still_gives_every_caller_a_few_examples() -> None:
    [user] = fuzz.plan(["agents"], ["user"], 1)
    assert user.max_examples == 3


def test_schemathesis_is_called_with_the_checks_the_seed_and_the_token(tmp_path: Path) -> None:
    item = fuzz.Pass("agents", "admin", 25, ("coverage", "fuzzing"))
    command = fuzz.schemathesis_command(
        item,
        "http://127.0.0.1:19311",
        token="tok",
        seed_value=7,
        workers=1,
        report=tmp_path / "r.json",
        python="py",
    )
    assert command[:5] == ["py", "-m", "schemathesis.cli", "run", "http://127.0.0.1:19311/openapi.json"]
    options = dict(zip(command[5::2], command[6::2], strict=False))
    assert options["--checks"].split(",") == list(fuzz.CHECKS)
    assert {"not_a_server_error", "response_schema_conformance"} <= set(options["--checks"].split(","))
    assert options["--max-examples"] == "25"
    assert options["--phases"] == "coverage,fuzzing"
    assert options["--seed"] == "7"
    assert options["--report-json-path"] == str(tmp_path / "r.json")
    assert command[-2:] == ["--header", "Authorization: Bearer tok"]
    assert "--exclude-path" not in command  # only where the document has the operation


def test_an_anonymous_pass_sends_no_authorization(tmp_path: Path) -> None:
    item = fuzz.Pass("users", "anonymous", 5, ("fuzzing",))
    command = fuzz.schemathesis_command(
        item, "http://u", token=None, seed_value=1, workers=1, report=tmp_path / "r.json"
    )
    assert not any("Authorization" in part for part in command)


REPORT: dict[str, Any] = {
    "exit_code": 1,
    "test_cases": {"generated": 368, "with_failures": 1},
    "failures": [
        {"code": "ST103", "title": "Undocumented status code", "count": 1, "operations": ["POST /auth/token"]}
    ],
    "errors": [],
    "warnings": {"missing_auth": ["GET /users"], "validation_mismatch": ["POST /users"], "rate_limited": []},
}


def test_a_report_with_a_failure_is_not_ok_and_names_it() -> None:
    outcome = fuzz.read_report(REPORT)
    assert not outcome.ok
    assert outcome.generated == 368
    assert outcome.failures == ["ST103 Undocumented status code (1): POST /auth/token"]
    assert outcome.warnings == ["missing_auth: GET /users", "validation_mismatch: POST /users"]


def test_only_401s_and_403s_are_expected_for_a_caller_without_scopes() -> None:
    outcome = fuzz.read_report(REPORT, authenticated=False)
    assert outcome.warnings == ["validation_mismatch: POST /users"]


def test_a_clean_report_is_ok() -> None:
    outcome = fuzz.read_report(
        {"exit_code": 0, "test_cases": {"generated": 10}, "failures": [], "errors": []}
    )
    assert outcome.ok


def test_the_summary_gives_the_seed_each_verdict_and_each_failure() -> None:
    clean = fuzz.Outcome(0, 100, [], [], [])
    failed = fuzz.read_report(REPORT)
    text = fuzz.summary(
        [(fuzz.Pass("users", "admin", 30, ()), failed), (fuzz.Pass("agents", "admin", 30, ()), clean)], 42
    )
    assert "--seed 42" in text
    assert "FAILED" in text
    assert "ST103 Undocumented status code (1): POST /auth/token" in text
    assert text.splitlines()[-1] == "1 of 2 passes clean"


def test_no_caller_is_fuzzed_on_the_logout_that_would_end_its_own_token(tmp_path: Path) -> None:
    item = fuzz.Pass("users", "admin", 5, ("stateful",))
    command = fuzz.schemathesis_command(
        item,
        "http://u",
        token="t",
        seed_value=1,
        workers=1,
        report=tmp_path / "r.json",
        exclude=["/auth/logout"],
    )
    assert fuzz.EXCLUDED_PATHS == ("/auth/logout",)
    assert command[command.index("--exclude-path") + 1] == "/auth/logout"
