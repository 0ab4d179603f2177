"""wrk: the command line for one load run and what its `--latency` report says."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "wrk is not installed: on Debian or Ubuntu, `apt-get install wrk`"
THREADS = 2
CONNECTIONS = 50

_TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_LATENCY = re.compile(r"^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", re.MULTILINE)
_RATE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_NON_2XX = re.compile(r"^\s*Non-2xx or 3xx responses:\s+(\d+)", re.MULTILINE)
_SOCKET = re.compile(
    r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.MULTILINE
)


class WrkUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    requests_per_second: float
    p50: float  # seconds
    p99: float
    non_2xx: int  # wrk counts "non-2xx or 3xx"
    socket_errors: Mapping[str, int]

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def seconds(amount: str, unit: str) -> float:
    return float(amount) * _TIME_UNITS[unit]


def parse(output: str) -> WrkResult:
    """Read wrk's report; raises ValueError when it is not one (wrk failed to start, say)."""
    rate = _RATE.search(output)
    total = _REQUESTS.search(output)
    latencies = {percent: seconds(amount, unit) for percent, amount, unit in _LATENCY.findall(output)}
    if rate is None or total is None or "50" not in latencies or "99" not in latencies:
        raise ValueError(f"not a wrk --latency report:\n{output[-2000:]}")
    non_2xx = _NON_2XX.search(output)
    socket = _SOCKET.search(output)
    return WrkResult(
        requests=int(total.group(1)),
        seconds=seconds(total.group(2), total.group(3)),
        requests_per_second=float(rate.group(1)),
        p50=latencies["50"],
        p99=latencies["99"],
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(
            zip(("connect", "read", "write", "timeout"), (int(n) for n in socket.groups()), strict=True)
        )
        if socket
        else {"connect": 0, "read": 0, "write": 0, "timeout": 0},
    )


def executable() -> str:
    found = shutil.which("wrk") or (shutil.which("wrk", path="/usr/bin:/usr/local/bin"))
    if found is None:
        raise WrkUnavailable(INSTALL_HINT)
    return found


def command(
    url: str,
    *,
    duration: float,
    headers: Mapping[str, str] | None = None,
    wrk: str = "wrk",
    script: Path | None = None,
    timeout: float | None = None,
    connections: int = CONNECTIONS,
) -> list[str]:
    args = [wrk, f"-t{THREADS}", f"-c{connections}", f"-d{duration:g}s", "--latency"]
    if timeout is not None:
        args += ["--timeout", f"{timeout:g}s"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    return [*args, url]


# Each request a POST of `BODY` with `{{n}}` replaced by `<run>-<thread>-<count>`, unique in the run,
# so that a registration or an order batch is new every time. Headers come from -H.
_POST_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end
request = function()
  counter = counter + 1
  local unique = string.format("%s-%d-%d", RUN, id or 0, counter)
  local body = string.gsub(BODY, "{{n}}", unique)
  return wrk.format("POST", nil, nil, body)
end
"""


def post_script(directory: Path, body: str, *, run: str) -> Path:
    """A wrk Lua script POSTing `body` (`{{n}}` unique per request); written into `directory`."""
    if "]==]" in body or not run.isalnum():
        raise ValueError("the body cannot hold ']==]' and the run id must be alphanumeric")
    path = directory / f"post-{run}.lua"
    path.write_text(f'RUN = "{run}"\nBODY = [==[{body}]==]\n{_POST_SCRIPT}')
    return path


def run(
    url: str,
    *,
    duration: float,
    headers: Mapping[str, str] | None = None,
    script: Path | None = None,
    timeout: float | None = None,
    connections: int = CONNECTIONS,
) -> WrkResult:
    """One wrk run; `timeout` replaces wrk's 2 s, after which an answer counts as a socket timeout."""
    completed = subprocess.run(
        command(
            url,
            duration=duration,
            headers=headers,
            wrk=executable(),
            script=script,
            timeout=timeout,
            connections=connections,
        ),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return parse(completed.stdout)
