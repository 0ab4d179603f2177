"""The CI matrix, built from what `nox --json -l` lists, so the workflow never names a session itself.

Every listed session becomes at least one job. A suite (`tests(<member>)`, `tests_postgres(<member>)`)
runs on every Python of the matrix and, when its member is given shards, becomes one job per shard;
pytest-split picks the shard's tests from the member's recorded durations. Lint and typecheck run once,
on the first Python. A session tagged `postgres` needs the machine's PostgreSQL binaries, from which
the test kit starts its own cluster.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypedDict

SUITES = ("tests", "tests_postgres")


class Job(TypedDict):
    id: str  # safe in artifact and file names
    name: str  # what the job is called in the CI page
    session: str  # nox -s <session>
    python: str
    suite: bool  # a pytest run, which writes JUnit XML
    args: str  # after `--`: pytest-split's options for one shard
    postgres: bool


def listed_sessions(root: Path) -> list[dict[str, Any]]:
    """`nox --json -l` run in `root`: the sessions `nox` with no arguments runs."""
    output = subprocess.run(
        [sys.executable, "-m", "nox", "--json", "-l"], cwd=root, check=True, capture_output=True, text=True
    ).stdout
    sessions: list[dict[str, Any]] = json.loads(output)
    return sessions


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def build(
    sessions: Sequence[Mapping[str, Any]], *, pythons: Sequence[str], shards: Mapping[str, int]
) -> list[Job]:
    if not pythons:
        raise ValueError("at least one Python version is needed")
    jobs: list[Job] = []
    for entry in sessions:
        session = str(entry["session"])
        suite = entry["name"] in SUITES
        package = str(entry.get("call_spec", {}).get("package", "")) if suite else ""
        count = shards.get(package, 1) if suite else 1
        if count < 1:
            raise ValueError(f"{package}: a package needs at least one shard, not {count}")
        for python in pythons if suite else pythons[:1]:
            for group in range(1, count + 1):
                split = count > 1
                label = f"{session} {group}/{count}" if split else session
                jobs.append(
                    Job(
                        id=_slug(
                            f"{session}-{group}of{count}-py{python}" if split else f"{session}-py{python}"
                        ),
                        name=f"{label} · py{python}",
                        session=session,
                        python=python,
                        suite=suite,
                        args=f"--splits {count} --group {group}" if split else "",
                        postgres="postgres" in entry.get("tags", ()),
                    )
                )
    return jobs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the GitHub Actions matrix for the nox sessions.")
    parser.add_argument("--python", action="append", dest="pythons", help="repeat for each version")
    parser.add_argument("--shards", default="{}", help='JSON: {"users": 2} splits users\' suites in two')
    parser.add_argument("--root", type=Path, default=Path.cwd())
    parser.add_argument("--github-output", action="store_true", help="append matrix=<json> to $GITHUB_OUTPUT")
    args = parser.parse_args(argv)
    jobs = build(listed_sessions(args.root), pythons=args.pythons or ["3.11"], shards=json.loads(args.shards))
    matrix = json.dumps({"include": jobs})
    if args.github_output:
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as output:
            output.write(f"matrix={matrix}\n")
    print(matrix)
    return 0


if __name__ == "__main__":
    sys.exit(main())
