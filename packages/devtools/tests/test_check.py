"""`starling-check` runs nox for real, on a small noxfile whose suites write the reports they are told to."""

from __future__ import annotations

import json
import signal
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from starling_devtools.check import main, split_selection, startable

NOXFILE = textwrap.dedent(
    """
    import os
    import time
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


    @nox.session(python=False, default=False)
    @nox.parametrize("name", ["one", "two", "three"], ids=["one", "two", "three"])
    def chatty(session, name):
        # each waits, printing, until the other two have started: they can only pass side by side
        Path(f"{name}.started").touch()
        deadline = time.monotonic() + 60
        line = 0
        while not all(Path(f"{other}.started").exists() for other in ("one", "two", "three")):
            if time.monotonic() > deadline:
                session.error(f"{name}: the others never started beside it")
            print(f"{name} {line}", flush=True)
            line += 1
            time.sleep(0.01)
        for more in range(line, line + 50):
            print(f"{name} {more}", flush=True)
        if name == "three":
            session.error("three fails after the others started")


    @nox.session(python=False, default=False)
    def hang(session):
        # a process of the session's own that would wait for ever, its pid where the test finds it
        script = "import os, pathlib, threading; pathlib.Path('hang.pid').write_text(str(os.getpid())); "
        session.run("python", "-c", script + "threading.Event().wait()")
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "noxfile.py").write_text(NOXFILE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STARLING_JUNIT_DIR", raising=False)
    return tmp_path


def last_line(capsys: pytest.CaptureFixture[str]) -> str:
    return printed(capsys)[-1]


def printed(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


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
    out = printed(capsys)
    assert out[-1] == "4 passed, 0 failed, 1 skipped"
    assert any("tests-crashed.xml" in line for line in out)


def test_reports_of_an_earlier_run_are_not_counted_again(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main(["-s", "tests(ok)"])
    assert main(["-s", "lint"]) == 0
    assert last_line(capsys) == "0 passed, 0 failed"


def test_sessions_side_by_side_print_their_output_whole_and_a_failure_fails_the_run(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--jobs", "3", "-s", "chatty", "tests(ok)"]) == 1

    out = printed(capsys)
    assert out[-1] == "4 passed, 0 failed, 1 skipped"
    for name in ("one", "two", "three"):
        # every line a session printed sits in one unbroken block, in the order it printed them
        mine = [index for index, line in enumerate(out) if line.startswith(f"{name} ")]
        assert len(mine) >= 50
        assert mine == list(range(mine[0], mine[0] + len(mine)))
        assert [out[index] for index in mine] == [f"{name} {line}" for line in range(len(mine))]
    # one and two pass only when all three ran at once; three fails after they did
    summary = {line.split()[0]: line.split()[-1] for line in out if line.startswith("  chatty(")}
    assert summary == {"chatty(one)": "success", "chatty(two)": "success", "chatty(three)": "aborted"}
    assert "failed: chatty(three) (their output is above)" in out


def test_one_job_runs_the_sessions_one_after_another(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--jobs", "1", "-s", "tests(ok)", "tests(bad)"]) == 1
    out = "\n".join(printed(capsys))
    assert out.endswith("\n6 passed, 2 failed, 1 skipped")
    assert "starling-check: 2 sessions, 1 at a time" in out


def test_nox_asked_for_something_else_than_sessions_answers_as_itself(
    project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["-l"]) == 0
    assert "* tests(ok)" in capfd.readouterr().out


def test_the_tools_with_fixed_ports_never_start_beside_one_another() -> None:
    assert startable(["fuzz", "soak", "tests(a)", "lint"], [], 3) == ["fuzz", "tests(a)", "lint"]
    assert startable(["fuzz", "tests(a)"], ["soak"], 3) == ["tests(a)"]
    assert startable(["faults"], ["tests(b)"], 2) == ["faults"]
    assert startable(["tests(a)"], ["soak", "tests(b)"], 2) == []


def test_only_the_options_that_choose_sessions_are_taken_from_nox_arguments() -> None:
    chosen, rest = split_selection(["-s", "a", "b", "-r", "-t", "postgres", "--", "-s", "-k", "x"])

    assert chosen == ["--sessions", "a", "b", "--tags", "postgres"]
    assert rest == ["-r", "--", "-s", "-k", "x"]


def test_a_report_asked_for_holds_every_session_with_its_duration(project: Path) -> None:
    assert main(["--report", str(project / "nox.json"), "-s", "tests(ok)", "lint"]) == 0

    report = json.loads((project / "nox.json").read_text())
    assert report["result"] == 1
    assert sorted(entry["signatures"][0] for entry in report["sessions"]) == ["lint", "tests(ok)"]
    assert all(entry["duration"] > 0 for entry in report["sessions"])


def test_a_terminated_run_stops_every_process_its_sessions_started(project: Path) -> None:
    check = psutil.Popen([sys.executable, "-m", "starling_devtools.check", "-s", "hang", "lint"])
    try:
        deadline = time.monotonic() + 60
        while not (project / "hang.pid").is_file() and check.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        session_process = psutil.Process(int((project / "hang.pid").read_text()))

        check.send_signal(signal.SIGTERM)

        assert check.wait(timeout=30) == 1
        _, left = psutil.wait_procs([session_process], timeout=10)
        assert left == []
    finally:  # a failed run leaves nothing behind either
        for process in [*check.children(recursive=True), check] if check.is_running() else []:
            process.kill()
