"""wrk: one load run, its figures written as JSON by the run's own Lua script.

Every run loads a script whose `done` prints the summary as one JSON line (wrk hands it the exact
counts and a latency histogram in microseconds): nothing is read back from wrk's human report. A write
run's script also makes each request a POST of `body` with `{{n}}` replaced by `<run>-<thread>-<count>`,
unique in the run, so that a registration or an order batch is new every time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from starling_devtools.bench.results import Unavailable

INSTALL_HINT = "wrk is not installed: on Debian or Ubuntu, `apt-get install wrk`"
THREADS = 2
CONNECTIONS = 50

_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '\\n{"requests": %d, "seconds": %.6f, "p50": %.6f, "p99": %.6f, "non_2xx": %d, '
    .. '"socket_errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1e6, latency:percentile(99) / 1e6,
    e.status, e.connect, e.read, e.write, e.timeout))
end
"""
_POST = """
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
request = function()
  counter = counter + 1
  local unique = string.format("%s-%d-%d", RUN, id or 0, counter)
  return wrk.format("POST", nil, nil, string.gsub(BODY, "{{n}}", unique))
end
"""


class WrkUnavailable(Unavailable):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    p50: float  # seconds
    p99: float
    non_2xx: int  # wrk counts "non-2xx or 3xx"
    socket_errors: Mapping[str, int]

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def parse(output: str) -> WrkResult:
    """The summary the script's `done` printed last; raises ValueError when there is none."""
    try:
        return WrkResult(**json.loads(output.strip().splitlines()[-1]))
    except (IndexError, ValueError, TypeError):
        raise ValueError(f"no summary from the bench's wrk script:\n{output[-2000:]}") from None


def executable() -> str:
    found = shutil.which("wrk") or shutil.which("wrk", path="/usr/bin:/usr/local/bin")
    if found is None:
        raise WrkUnavailable(INSTALL_HINT)
    return found


def script(directory: Path, body: str | None = None) -> Path:
    """The run's Lua script in `directory`: the JSON summary and, with a `body`, its POSTs."""
    run = uuid.uuid4().hex[:8]
    path = directory / f"wrk-{run}.lua"
    if body is None:
        path.write_text(_DONE)
        return path
    if "]==]" in body:
        raise ValueError("the body cannot hold ']==]', which ends the script's string")
    path.write_text(f'RUN = "{run}"\nBODY = [==[{body}]==]\n{_POST}{_DONE}')
    return path


def command(
    url: str, script: Path, *, duration: float, headers: Mapping[str, str], timeout: float, connections: int
) -> list[str]:
    args = [
        executable(),
        f"-t{THREADS}",
        f"-c{connections}",
        f"-d{duration:g}s",
        "--timeout",
        f"{timeout:g}s",
    ]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    return [*args, "-s", str(script), url]


def run(
    url: str,
    script: Path,
    *,
    duration: float,
    headers: Mapping[str, str],
    timeout: float = 2.0,
    connections: int = CONNECTIONS,
) -> WrkResult:
    """One wrk run; an answer slower than `timeout` counts as a socket timeout."""
    argv = command(url, script, duration=duration, headers=headers, timeout=timeout, connections=connections)
    completed = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return parse(completed.stdout)
