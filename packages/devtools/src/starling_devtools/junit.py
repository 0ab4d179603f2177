"""Every suite's JUnit XML read back: one Markdown table for CI's summary job, and the summed closing line
(`N passed, M failed`) that the README's test command ends with.
"""

from __future__ import annotations

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Totals:
    job: str
    tests: int
    failures: int
    errors: int
    skipped: int
    seconds: float

    @property
    def failed(self) -> int:
        """Failures and errors alike: a test that errored in its setup did not pass either."""
        return self.failures + self.errors

    @property
    def passed(self) -> bool:
        return self.failed == 0 and self.tests > 0


def read(path: Path) -> Totals:
    root = ET.parse(path).getroot()  # noqa: S314 - our own jobs' reports, not untrusted input
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))

    def total(attribute: str) -> int:
        return sum(int(suite.get(attribute, "0")) for suite in suites)

    return Totals(
        job=path.stem,
        tests=total("tests"),
        failures=total("failures"),
        errors=total("errors"),
        skipped=total("skipped"),
        seconds=sum(float(suite.get("time", "0")) for suite in suites),
    )


def report_name(session: str) -> str:
    """The file a nox session writes its JUnit XML to: `tests(users)` -> `tests-users.xml`."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", session).strip("-") + ".xml"


def closing_line(rows: list[Totals]) -> str:
    """pytest's plain closing line summed over every report: `N passed, M failed[, K skipped]`."""
    skipped = sum(row.skipped for row in rows)
    failed = sum(row.failed for row in rows)
    passed = sum(row.tests for row in rows) - failed - skipped
    line = f"{passed} passed, {failed} failed"
    return f"{line}, {skipped} skipped" if skipped else line


def table(rows: list[Totals]) -> str:
    lines = [
        "| job | tests | failed | errors | skipped | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        mark = "" if row.passed else " ❌"
        counts = f"{row.tests} | {row.failures} | {row.errors} | {row.skipped}"
        lines.append(f"| {row.job}{mark} | {counts} | {row.seconds:.1f} |")
    counts = " | ".join(
        str(sum(getattr(r, field) for r in rows)) for field in ("tests", "failures", "errors", "skipped")
    )
    lines.append(f"| **all {len(rows)} jobs** | {counts} | {sum(r.seconds for r in rows):.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise a folder of JUnit XML files as Markdown.")
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    rows = [read(path) for path in sorted(args.folder.rglob("*.xml"))]
    if not rows:
        print("no JUnit reports found", file=sys.stderr)
        return 1
    print(table(rows))
    return 0 if all(row.passed for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
