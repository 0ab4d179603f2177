from __future__ import annotations

from pathlib import Path

import pytest

from starling_devtools.junit import closing_line, main, read, report_name, table

PASSED = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="0"
skipped="1" tests="12" time="3.5"></testsuite></testsuites>"""
FAILED = """<?xml version="1.0" encoding="utf-8"?><testsuite name="pytest" errors="1" failures="2"
skipped="0" tests="20" time="1.25"></testsuite>"""


def test_totals_are_read_from_either_root_element(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(PASSED)
    (tmp_path / "b.xml").write_text(FAILED)

    passed, failed = read(tmp_path / "a.xml"), read(tmp_path / "b.xml")

    assert (passed.tests, passed.skipped, passed.seconds, passed.passed) == (12, 1, 3.5, True)
    assert (failed.failures, failed.errors, failed.passed) == (2, 1, False)
    assert table([passed, failed]).splitlines()[-1] == "| **all 2 jobs** | 32 | 2 | 1 | 1 | 4.8 |"


def test_the_summary_fails_when_a_job_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tests-users-py3.11.xml").write_text(PASSED)
    assert main([str(tmp_path)]) == 0

    (tmp_path / "tests-agents-py3.11.xml").write_text(FAILED)
    assert main([str(tmp_path)]) == 1
    assert "| tests-agents-py3.11 ❌ | 20 | 2 | 1 | 0 | 1.2 |" in capsys.readouterr().out


def test_no_reports_at_all_is_a_failure(tmp_path: Path) -> None:
    assert main([str(tmp_path)]) == 1


def test_the_closing_line_sums_every_report_with_failures_and_errors_as_failed(tmp_path: Path) -> None:
    (tmp_path / "a.xml").write_text(PASSED)
    (tmp_path / "b.xml").write_text(FAILED)

    rows = [read(tmp_path / "a.xml"), read(tmp_path / "b.xml")]

    # 32 tests: 2 failures and 1 error are 3 failed, 1 skipped, the other 28 passed
    assert closing_line(rows) == "28 passed, 3 failed, 1 skipped"
    assert closing_line(rows[1:]) == "17 passed, 3 failed"
    assert closing_line([]) == "0 passed, 0 failed"


def test_a_session_name_becomes_a_safe_report_name() -> None:
    assert report_name("tests(users)") == "tests-users.xml"
    assert report_name("tests_postgres(core)") == "tests_postgres-core.xml"
