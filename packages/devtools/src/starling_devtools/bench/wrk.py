"""wrk: the command line for one load run and what its `--latency` report says."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

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
    url: str, *, duration: float, headers: Mapping[str, str] | None = None, wrk: str = "wrk"
) -> list[str]:
    args = [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{duration:g}s", "--latency"]
    for name, value in (headers or {}).items():
        args += ["-H", f"{name}: {value}"]
    return [*args, url]


def run(url: str, *, duration: float, headers: Mapping[str, str] | None = None) -> WrkResult:
    completed = subprocess.run(
        command(url, duration=duration, headers=headers, wrk=executable()),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"wrk exited with {completed.returncode}: {completed.stderr.strip()}")
    return parse(completed.stdout)
