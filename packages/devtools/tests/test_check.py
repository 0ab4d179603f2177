"""`starling-check` runs nox for real, on a small noxfile whose suites write the reports they are told to."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from starling_devtools.check import main

NOXFILE = textwrap.dedent(
    """
    import os
    from pathlib import Path

    import nox

    REPORTS = {
        "ok": '<testsuite tests="5" failures="0" errors="0" skipped="1" time="1"></testsuite>',
        "bad": '<testsuite tests="4" failures="1" errors="1" skipped="0" time="1"></testsuite>',
    }


    @nox.session(python=False)
    @nox.parametrize("package", ["ok", "bad", "crashed"], ids=["ok", "bad", "crashed"])
    def tests(session, package):
        if package == "crashed":
            session.error("the suite's environment could not be built")
        folder = Path(os.environ["STARLING_JUNIT_DIR"])
        (folder / f"tests-{package}.xml").write_text(REPORTS[package])


    @nox.session(python=False)
    def lint(session):
        pass
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "noxfile.py").write_text(NOXFILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STARLING_JUNIT_DIR", raising=False)
    return tmp_path


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.splitlines()[-1]


def test_passing_suites_end_with_their_summed_line_and_exit_zero(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-s", "tests(ok)", "lint"]) == 0
    assert last_line(capsys) == "4 passed, 0 failed, 1 skipped"


def test_a_failed_test_is_counted_and_fails_the_command(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-s", "tests(ok)", "tests(bad)"]) == 1
    assert last_line(capsys) == "6 passed, 2 failed, 1 skipped"


def test_a_suite_that_wrote_no_report_fails_the_command(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["-s", "tests(ok)", "tests(crashed)"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "4 passed, 0 failed, 1 skipped"
    assert any("tests-crashed.xml" in line for line in out)


def test_reports_of_an_earlier_run_are_not_counted_again(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["-s", "tests(ok)"])
    assert main(["-s", "lint"]) == 0
    assert last_line(capsys) == "0 passed, 0 failed"
