"""Starling's sessions: each member's suite on SQLite and on PostgreSQL, lint, typecheck and serve.

Members are discovered from `[tool.uv.workspace]` in the root pyproject.toml, so a new package under
`services/` gets its `tests(<name>)` session without an edit here.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

SERVICE_PORTS = {"users": 8001, "agents": 8002, "reporting": 8003}


def members() -> dict[str, Path]:
    """Workspace members by short name (the directory name): {"core": packages/core, ...}."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    found: dict[str, Path] = {}
    for pattern in config["tool"]["uv"]["workspace"]["members"]:
        for path in sorted(ROOT.glob(pattern)):
            if (path / "pyproject.toml").is_file():
                found[path.name] = path
    return found


def distribution(path: Path) -> str:
    return str(tomllib.loads((path / "pyproject.toml").read_text())["project"]["name"])


def services() -> dict[str, Path]:
    return {name: path for name, path in members().items() if path.parent.name == "services"}


MEMBERS = members()


def sync(session: nox.Session, *args: str) -> None:
    """Install into the session's venv exactly what the lock says for `args`, offline-safe."""
    venv = getattr(session.virtualenv, "location", None)
    env = {"UV_PROJECT_ENVIRONMENT": venv} if venv else {}
    session.run_install("uv", "sync", "--frozen", "--no-default-groups", *args, env=env)


def run_suite(session: nox.Session, package: str, *pytest_args: str) -> None:
    path = MEMBERS[package]
    sync(session, "--package", distribution(path), "--group", "test")
    tests_dir = str(path.relative_to(ROOT) / "tests")
    session.run("pytest", tests_dir, "-n", "auto", "-p", "no:cacheprovider", *pytest_args, *session.posargs)


@nox.session
@nox.parametrize("package", list(MEMBERS), ids=list(MEMBERS))
def tests(session: nox.Session, package: str) -> None:
    """Run one member's suite under xdist on SQLite."""
    run_suite(session, package)


# The kit's own suite runs every behaviour on both databases inside its pytester projects, so a
# PostgreSQL variant of it would run the very same tests again.
DATABASE_SUITES = [name for name in MEMBERS if name != "testkit"]


@nox.session
@nox.parametrize("package", DATABASE_SUITES, ids=DATABASE_SUITES)
def tests_postgres(session: nox.Session, package: str) -> None:
    """Run one member's suite under xdist on PostgreSQL (a throwaway cluster the kit starts)."""
    run_suite(session, package, "--db", "postgres")


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole tree."""
    sync(session, "--only-group", "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every member, one run each (their tests/ folders would collide in one run)."""
    sync(session, "--all-packages", "--all-groups")
    for name, path in MEMBERS.items():
        session.log(f"mypy: {name}")
        targets = [str(p.relative_to(ROOT)) for p in (path / "src", path / "tests") if p.is_dir()]
        session.run("mypy", *targets)
    session.run("mypy", "noxfile.py")


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Run every service on its default port with SQLite under .data/; Ctrl-C stops them all."""
    found = services()
    if not found:
        session.log("No services yet: add one under services/ and it is served here.")
        return
    sync(session, "--all-packages", "--no-dev")
    processes: list[subprocess.Popen[bytes]] = []
    bin_dir = Path(session.bin)
    try:
        for index, (name, _path) in enumerate(sorted(found.items())):
            port = SERVICE_PORTS.get(name, 8100 + index)
            module = f"starling_{name}.main:app"
            session.log(f"{name}: http://127.0.0.1:{port}  ({module})")
            processes.append(
                subprocess.Popen(
                    [str(bin_dir / "uvicorn"), module, "--host", "127.0.0.1", "--port", str(port)],
                    cwd=ROOT,
                )
            )
        for process in processes:
            process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        if processes:
            print("all services stopped", file=sys.stderr)


def run_tool(session: nox.Session, module: str) -> None:
    """Run one of starling_devtools' command-line tools with every member installed."""
    sync(session, "--all-packages", "--all-groups")
    session.run("python", "-m", module, *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure test isolation, request and serving costs as ratios against references in the same run."""
    run_tool(session, "starling_devtools.bench")


@nox.session(default=False)
def soak(session: nox.Session) -> None:
    """All three services under a bounded load, then every accepted write counted in the databases."""
    run_tool(session, "starling_devtools.soak")


@nox.session(default=False)
def faults(session: nox.Session) -> None:
    """PostgreSQL stopped and restarted, the agents service killed, an upstream dropping connections."""
    run_tool(session, "starling_devtools.faults")


@nox.session(default=False)
def fuzz(session: nox.Session) -> None:
    """schemathesis against every service's /openapi.json, with tokens, over real HTTP."""
    run_tool(session, "starling_devtools.fuzz")
