"""`starling-check`: nox's default sessions (or the ones given), then one honest closing line.

nox ends with its own list of sessions, so the line that says how many tests ran cannot come from a
session: this command runs nox, then sums the JUnit XML every suite wrote into one folder and prints
pytest's plain closing line, `N passed, M failed`, as the last line of the whole run. It exits non-zero
when nox failed, when a test failed or errored, or when a suite that ran wrote no report (a suite that
crashed before pytest started must not read as one that passed).

    starling-check                    # what the README's test command runs: every default session
    starling-check -s "tests(users)"  # anything given goes to nox
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from starling_devtools.junit import closing_line, read, report_name
from starling_devtools.matrix import SUITES

# The noxfile writes each suite's report here when this variable is set (see `run_suite`).
JUNIT_DIR_VARIABLE = "STARLING_JUNIT_DIR"


def expected_reports(nox_report: Path) -> list[str]:
    """The report file of every suite session nox ran: passed, failed or aborted (only a skip writes none)."""
    if not nox_report.is_file():
        return []
    sessions = json.loads(nox_report.read_text())["sessions"]
    return [
        report_name(entry["signatures"][0] if entry["signatures"] else entry["name"])
        for entry in sessions
        if entry["name"] in SUITES and entry["result"] != "skipped"
    ]


def main(argv: list[str] | None = None) -> int:
    # nox's own `--report` is honoured (the bench reads session durations from it) and read here too
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--report", type=Path)
    known, nox_args = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    folder = Path(os.environ.get(JUNIT_DIR_VARIABLE) or Path.cwd() / ".junit").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.xml"):
        stale.unlink()
    with tempfile.TemporaryDirectory(prefix="starling-check-") as scratch:
        nox_report = known.report or Path(scratch) / "nox.json"
        returncode = subprocess.call(
            [sys.executable, "-m", "nox", "--report", str(nox_report), *nox_args],
            env={**os.environ, JUNIT_DIR_VARIABLE: str(folder)},
        )
        expected = expected_reports(nox_report)
    sys.stderr.flush()
    missing = [name for name in expected if not (folder / name).is_file()]
    rows = [read(path) for path in sorted(folder.glob("*.xml"))]
    for name in missing:
        print(f"no JUnit report: {folder / name} (the suite stopped before pytest wrote it)")
    if returncode:
        print(f"nox exited with {returncode}: the sessions marked failed above did not pass")
    print(closing_line(rows), flush=True)
    failed = sum(row.failed for row in rows)
    return 1 if returncode or failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
