"""Figure 4 (opt-in, about 5 to 8 minutes): the README's test command, timed warm from the repository root.

`python3 -m uv run --frozen starling-check`, with `--report` added so that nox writes each session's duration.
"Warm" means the sessions' virtual environments already exist (nox reuses them); the figure says
whether they did. The bench runs inside a nox session's environment, so the command gets the
environment of the caller minus that session's `VIRTUAL_ENV`, as a developer's shell would have it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starling_devtools.bench.results import Figure

PART = "readme"
README_COMMAND = ("python3", "-m", "uv", "run", "--frozen", "starling-check")
TIMEOUT = 3600.0
SKIPPED = "skipped: opt in with --readme or --only readme (about 5-8 min)"


@dataclass(frozen=True)
class SessionTime:
    name: str
    result: str
    seconds: float


@dataclass(frozen=True)
class ReadmeRun:
    seconds: float
    returncode: int
    warm: bool  # the sessions' environments existed before the run
    sessions: list[SessionTime] = field(default_factory=list)


def parse_report(report: dict[str, Any]) -> list[SessionTime]:
    """Sessions from nox's `--report` JSON, slowest first."""
    sessions = [
        SessionTime(str(entry["signatures"][0] if entry.get("signatures") else entry["name"]),
                    str(entry["result"]), float(entry.get("duration") or 0.0))
        for entry in report.get("sessions", [])
    ]  # fmt: skip
    return sorted(sessions, key=lambda session: session.seconds, reverse=True)


def command(report: Path, *, python: str = sys.executable) -> list[str]:
    # The README's `python3`, as the interpreter this bench runs on (the same one within nox).
    return [python, *README_COMMAND[1:], "--report", str(report)]


def run(root: Path, log: Path, *, argv: Sequence[str] | None = None) -> ReadmeRun:
    """Run the README's command (or `argv`, a stand-in for tests) in `root`, its output into `log`."""
    warm = (root / ".nox").is_dir()
    env = {name: value for name, value in os.environ.items() if name != "VIRTUAL_ENV"}
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="starling-bench-nox-") as directory, log.open("wb") as output:
        report = Path(directory) / "report.json"
        started = time.perf_counter()
        completed = subprocess.run(
            list(argv) if argv is not None else command(report),
            cwd=root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            timeout=TIMEOUT,
            check=False,
        )
        seconds = time.perf_counter() - started
        sessions = parse_report(json.loads(report.read_text())) if report.exists() else []
    return ReadmeRun(seconds, completed.returncode, warm, sessions)


def figures(measured: ReadmeRun | None) -> list[Figure]:
    name = f"README test command ({' '.join(README_COMMAND)}), warm"
    if measured is None:
        return [Figure(PART, name, None, "s", note=SKIPPED)]
    slowest = ", ".join(f"{session.name} {session.seconds:.0f} s" for session in measured.sessions[:3])
    status = "passed" if measured.returncode == 0 else f"FAILED (exit {measured.returncode})"
    warmth = "" if measured.warm else "; .nox did not exist: this was a cold run"
    return [
        Figure(
            PART,
            name,
            measured.seconds,
            "s",
            reference="no same-run reference",
            detail=f"{status}, {len(measured.sessions)} sessions; slowest: {slowest or '-'}{warmth}",
        )
    ]
