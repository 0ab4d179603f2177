"""The environments the whole-process figures run in, each what its users would have.

- A service's own test environment: the users service and its `test` group from `uv.lock`, exactly
  what `nox -s "tests(users)"` installs (no fuzz plugins, no dev tools).
- pytest-django's: Django 5.2, pytest-django 4.14 and psycopg 3, the versions the anchors measured,
  installed by uv from the package index the first time and kept under `.bench/venvs/` (a run without
  the index and without a kept environment reports the peer as unavailable).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from starling_devtools.bench.results import Unavailable
from starling_devtools.harness import ROOT

DJANGO_REQUIREMENTS = ("django~=5.2.0", "pytest-django~=4.14.0", "psycopg[binary]~=3.2", "pytest>=9.0")
SERVICE = "starling-users"


class PeerUnavailable(Unavailable):
    pass


def _uv(*args: str, env: dict[str, str] | None = None) -> None:
    environment = {**os.environ, **(env or {}), "UV_PYTHON_DOWNLOADS": "never"}
    argv = [sys.executable, "-m", "uv", *args]
    completed = subprocess.run(
        argv, capture_output=True, text=True, check=False, env=environment, cwd=ROOT, timeout=900
    )
    if completed.returncode != 0:
        raise PeerUnavailable(f"uv {' '.join(args[:2])} failed: {completed.stderr.strip()[-500:]}")


def python_of(venv: Path) -> str:
    return str(venv.resolve() / "bin" / "python")  # absolute: each run starts in its project's folder


def service_environment(where: Path) -> str:
    """A venv with the users service and its test group, as its suite's nox session has; its python."""
    env = {"UV_PROJECT_ENVIRONMENT": str(where)}
    _uv("sync", "--frozen", "--no-default-groups", "--package", SERVICE, "--group", "test", "-q", env=env)
    return python_of(where)


def django_environment(where: Path) -> str:
    """A venv with Django, pytest-django and psycopg, made once and kept; its python."""
    marker = where / "requirements.txt"
    wanted = "\n".join(DJANGO_REQUIREMENTS)
    if not (marker.is_file() and marker.read_text() == wanted):
        _uv("venv", "-q", "--allow-existing", "--python", sys.executable, str(where))
        _uv("pip", "install", "-q", "--python", python_of(where), *DJANGO_REQUIREMENTS)
        marker.write_text(wanted)
    return python_of(where)
