"""A page as a real browser renders it: headless Chromium's DOM after the page's scripts have run.

`await rendered_dom(url)` starts Chromium (`--dump-dom`, a fresh profile, no network but loopback:
every other host name fails to resolve, so a page that needs the internet shows it) and returns the
DOM once the page settled. It runs as an asyncio subprocess, so a `live_server` on the test's own loop
keeps answering the browser meanwhile.

The browser is found on PATH (`chromium`, `chromium-browser`, `google-chrome`) or at
`STARLING_CHROMIUM`. When there is none and the run is root on Debian or Ubuntu, Debian's `chromium`
package is installed, once for the whole run, the way CI's fresh machines get it; otherwise the test
fails saying what to install. A missing browser is never a skip.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

BROWSER_VARIABLE = "STARLING_CHROMIUM"
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
DEBIAN_PACKAGE = "chromium"
INSTALL_TIMEOUT = 900.0

# Headless, sandboxless (as root there is no other way), and quiet: no first-run, sync, update or
# background requests, which a machine without the internet refuses by the dozen.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    # Only loopback resolves: the page must work offline, and here it has to.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)


class BrowserUnavailable(RuntimeError):
    pass


def find_chromium() -> Path | None:
    """The browser named by STARLING_CHROMIUM, else the first of `NAMES` on PATH; None if neither."""
    if chosen := os.environ.get(BROWSER_VARIABLE):
        path = Path(chosen)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrowserUnavailable(f"{BROWSER_VARIABLE}={chosen} is not an executable file")
        return path
    for name in NAMES:
        if found := shutil.which(name):
            return Path(found)
    return None


def chromium(
    *, install: Callable[[], None] | None = None, lock_dir: Path | None = None, root: bool | None = None
) -> Path:
    """The browser to render with, installing Debian's package first when that is possible here."""
    if found := find_chromium():
        return found
    is_root = os.geteuid() == 0 if root is None else root
    if not is_root or (install is None and shutil.which("apt-get") is None):
        raise BrowserUnavailable(
            "starling: this test renders a page in headless Chromium, and there is none: install it "
            f"(Debian: apt-get install {DEBIAN_PACKAGE}; as root the kit does it itself), or set "
            f"{BROWSER_VARIABLE} to a Chromium or Chrome binary"
        )
    # One installer at a time: xdist workers (and parallel suites) may all find it missing at once.
    with FileLock(str((lock_dir or Path(tempfile.gettempdir())) / "starling-chromium.lock")):
        if found := find_chromium():
            return found
        (install or _apt_install)()
        if found := find_chromium():
            return found
    raise BrowserUnavailable(f"starling: installed {DEBIAN_PACKAGE}, and still no browser among {NAMES}")


def _apt_install() -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", DEBIAN_PACKAGE]):
        result = subprocess.run(  # noqa: S603 - fixed commands, no input from outside
            command, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT, check=False
        )
        if result.returncode != 0:
            failed = " ".join(command)
            raise BrowserUnavailable(
                f"starling: `{failed}` failed ({result.returncode}): {result.stderr.strip()[-2000:]}"
            )


async def rendered_dom(url: str, *, budget_ms: int = 15_000, seconds: float = 90.0) -> str:
    """The DOM of `url` once its scripts ran, the network went quiet and `budget_ms` of virtual time
    passed (virtual time waits for pending requests, so a slow answer does not cut the page short); at
    most `seconds` of real time."""
    browser = await asyncio.to_thread(chromium)
    with tempfile.TemporaryDirectory(prefix="starling-chromium-") as profile:
        process = await asyncio.create_subprocess_exec(
            str(browser),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={budget_ms}",
            "--dump-dom",
            url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(seconds):
                out, err = await process.communicate()
        except TimeoutError:
            process.kill()
            await process.wait()
            raise BrowserUnavailable(
                f"starling: Chromium did not finish rendering {url} in {seconds:.0f} s"
            ) from None
    if process.returncode != 0 or not out.strip():
        said = err.decode(errors="replace")[-2000:]
        raise BrowserUnavailable(f"starling: Chromium failed on {url} (exit {process.returncode}): {said}")
    return out.decode("utf-8", errors="replace")
