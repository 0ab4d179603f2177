"""One Markdown table from every job's JUnit XML: what CI's summary job writes to the run's page."""

from __future__ import annotations

import argparse
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
    def passed(self) -> bool:
        return self.failures == 0 and self.errors == 0 and self.tests > 0


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
