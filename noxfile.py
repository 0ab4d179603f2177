"""Starling's sessions: each member's suite on SQLite and on PostgreSQL, lint, typecheck, and the tools
around them (CI matrix, affected packages, durations for sharding, serve, bench, soak, faults, fuzz).

Members and their dependencies are read from the workspace's pyproject.toml files
(`starling_devtools.workspace`), so a new package under `services/` gets its sessions, its place in
the CI matrix and in `affected` without an edit here.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

import nox
import yaml

from starling_devtools import affected as affected_packages
from starling_devtools import check, junit, workspace

ROOT = Path(__file__).parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
os.environ.setdefault("UV_PYTHON_DOWNLOADS", "never")
# Every pytest process (and every xdist worker) is a fresh interpreter: without cached bytecode each one
# compiles every module it imports again, about 5 s a process on these machines. The session venvs and
# the git-ignored __pycache__ folders are ours to write, whatever the shell asked for.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

nox.options.default_venv_backend = "uv"
nox.options.reuse_venv = "yes"
nox.options.error_on_missing_interpreters = True

MEMBERS = workspace.load(ROOT)


def test_settings(name: str) -> dict[str, Any]:
    """A member's `[tool.starling.tests]` table: how its own team wants its suite run."""
    config = tomllib.loads((MEMBERS[name].path / "pyproject.toml").read_text())
    settings: dict[str, Any] = config.get("tool", {}).get("starling", {}).get("tests", {})
    return settings


# A member lists `databases = ["sqlite"]` when switching its suite to PostgreSQL would run the very same
# tests again: the kit's suite covers both databases inside its pytester projects, and devtools has none.
DATABASE_SUITES = [
    name for name in MEMBERS if "postgres" in test_settings(name).get("databases", ["postgres"])
]


def shard_counts() -> dict[str, int]:
    """How many CI jobs each member's suite is split into: the workflow's SHARDS, its one source."""
    if not WORKFLOW.is_file():
        return {}
    counts: dict[str, int] = json.loads(yaml.safe_load(WORKFLOW.read_text())["env"]["SHARDS"])
    return counts


SHARDED = [name for name, count in shard_counts().items() if count > 1 and name in MEMBERS]


def sync(session: nox.Session, *args: str) -> None:
    """Install into the session's venv exactly what the lock says for `args`, offline-safe."""
    venv = getattr(session.virtualenv, "location", None)
    env = {"UV_PROJECT_ENVIRONMENT": venv} if venv else {}
    session.run_install("uv", "sync", "--frozen", "--no-default-groups", *args, env=env)


def sync_suite(session: nox.Session, package: str) -> Path:
    member = MEMBERS[package]
    sync(session, "--package", member.distribution, "--group", "test")
    return member.path


def run_suite(session: nox.Session, package: str, *pytest_args: str) -> None:
    path = sync_suite(session, package)
    # Measured per package (see its pyproject.toml): on 2 cores, starting xdist workers costs more than
    # a small suite's whole run. A suite that says nothing runs in one process, the faster choice
    # everywhere it was measured; `-n auto` after `--` asks for workers.
    settings = test_settings(package)
    workers = str(settings.get("workers", 0))
    # `dist` also serves `-n auto` given after `--` to a suite that runs in one process by default.
    dist = settings.get("dist", "load" if workers != "0" else None)
    distribution = ["--dist", str(dist)] if dist else []
    # `nox -s "tests(x)" -- tests/test_one.py::test_it` runs what was named, not the whole folder too.
    targets = named_targets(session.posargs, path)
    given = [arg for arg in session.posargs if arg not in targets] + [targets[arg] for arg in targets]
    # `starling-check` (the README's test command) sums every suite's report into its closing line.
    reports = os.environ.get(check.JUNIT_DIR_VARIABLE)
    report = [f"--junitxml={Path(reports) / junit.report_name(session.name)}"] if reports else []
    session.run(
        "pytest",
        *([] if targets else [str(path / "tests")]),
        "-n",
        workers,
        *distribution,
        "-p",
        "no:cacheprovider",
        # pytest-split reads the recorded durations when CI passes `--splits N --group i`
        "--durations-path",
        str(path / ".test_durations"),
        *report,
        *pytest_args,
        *given,
    )


def named_targets(args: list[str], package_path: Path) -> dict[str, str]:
    """The paths and node ids among `args` (`tests/test_x.py`, `.../test_x.py::test_y`), each as pytest
    must be given it: as written when it exists from the root, else under the package's folder."""
    targets: dict[str, str] = {}
    for arg in args:
        if arg.startswith("-"):
            continue
        where, _, rest = arg.partition("::")
        if where and (ROOT / where).exists():
            targets[arg] = arg
        elif where and (ROOT / package_path / where).exists():
            targets[arg] = str(package_path / where) + (f"::{rest}" if rest else "")
    return targets


@nox.session
@nox.parametrize("package", list(MEMBERS), ids=list(MEMBERS))
def tests(session: nox.Session, package: str) -> None:
    """Run one member's suite on SQLite (in xdist workers or one process, as its pyproject says)."""
    run_suite(session, package)


@nox.session(tags=["postgres"])
@nox.parametrize("package", DATABASE_SUITES, ids=DATABASE_SUITES)
def tests_postgres(session: nox.Session, package: str) -> None:
    """Run one member's suite on PostgreSQL (a throwaway cluster the kit starts)."""
    run_suite(session, package, "--db", "postgres")


def collected_ids(session: nox.Session, tests_dir: str, *args: str) -> list[str]:
    output = session.run(
        "pytest", tests_dir, "--collect-only", "-q", "-p", "no:cacheprovider", *args, silent=True
    )
    assert isinstance(output, str)
    return [line for line in output.splitlines() if "::" in line]


@nox.session
@nox.parametrize("package", SHARDED, ids=SHARDED)
def shards(session: nox.Session, package: str) -> None:
    """Prove the CI shards of a split suite together collect every test of the unsplit suite, once."""
    path = sync_suite(session, package)
    tests_dir, durations = str(path / "tests"), str(path / ".test_durations")
    whole = collected_ids(session, tests_dir)
    count = shard_counts()[package]
    parts = [
        collected_ids(
            session, tests_dir, "--splits", str(count), "--group", str(group), "--durations-path", durations
        )
        for group in range(1, count + 1)
    ]
    joined = [test for part in parts for test in part]
    duplicated = sorted({test for test in joined if joined.count(test) > 1})
    missing = sorted(set(whole) - set(joined))
    if duplicated or missing or len(joined) != len(whole):
        session.error(
            f"{package}: shards differ from the whole suite; missing {missing[:5]}, twice {duplicated[:5]}"
        )
    session.log(
        f"{package}: {count} shards of {[len(p) for p in parts]} tests = the whole suite's {len(whole)}"
    )


@nox.session(default=False)
@nox.parametrize("package", list(MEMBERS), ids=list(MEMBERS))
def durations(session: nox.Session, package: str) -> None:
    """Record a member's test durations for pytest-split (commit the refreshed .test_durations)."""
    path = sync_suite(session, package)
    session.run(
        "pytest",
        str(path / "tests"),
        "-p",
        "no:cacheprovider",
        "-q",
        "--store-durations",
        "--clean-durations",
        "--durations-path",
        str(path / ".test_durations"),
        *session.posargs,
    )


@nox.session(python=False, default=False)
def matrix(session: nox.Session) -> None:
    """Print the CI matrix built from `nox --json -l` (the workflow passes --python and --shards)."""
    from starling_devtools import matrix as ci_matrix

    ci_matrix.main(["--root", str(ROOT), *session.posargs])


@nox.session(python=False, default=False)
def affected(session: nox.Session) -> None:
    """Run the suites of the members changed since a git ref and of every member depending on them."""
    if not session.posargs:
        session.error("give a git ref: nox -s affected -- origin/main")
    # selection(), not affected() over the changed files: a lock whose only changes are members' own
    # entries selects those members, not every suite.
    changed = affected_packages.changed_files(ROOT, session.posargs[0])
    selected = sorted(affected_packages.selection(ROOT, session.posargs[0], changed))
    session.log(f"{len(changed)} files changed since {session.posargs[0]}; affected: {selected or 'none'}")
    for name in selected:
        session.notify(f"tests({name})", session.posargs[1:])
        if name in DATABASE_SUITES:
            session.notify(f"tests_postgres({name})", session.posargs[1:])


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree, the architecture rules (import-linter) and the workflow (zizmor)."""
    sync(session, "--only-group", "dev")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    # built from the members found: a new service is held to the same rules with no edit
    session.run("python", "-m", "starling_devtools.architecture")
    session.run("zizmor", "--offline", "--config", ".github/zizmor.yml", ".github/workflows")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict on every member, one run each (their tests/ folders would collide in one run)."""
    sync(session, "--all-packages", "--all-groups")
    for name, member in MEMBERS.items():
        session.log(f"mypy: {name}")
        targets = [str(p) for p in (member.path / "src", member.path / "tests") if (ROOT / p).is_dir()]
        session.run("mypy", *targets)
    session.run("mypy", "noxfile.py")
    # The bench's test projects (which the config leaves out of devtools' run): each is checked as it
    # runs, in a folder of its own, with the checked-in folders it is copied from as its import roots.
    from starling_devtools.bench import projects

    for kind in projects.LAYOUTS:
        roots = projects.folders(kind)
        files = [os.path.relpath(path, ROOT) for root in roots for path in sorted(root.rglob("*.py"))]
        session.log(f"mypy: bench project {kind}")
        search_path = os.pathsep.join(str(root) for root in roots)
        session.run("mypy", "--explicit-package-bases", *files, env={"MYPYPATH": search_path})


@nox.session(default=False)
def serve(session: nox.Session) -> None:
    """Every service on its port with SQLite under .data/, seeded with demo data; Ctrl-C stops them all.

    SIGTERM and SIGHUP stop them the same way. A service's port is its `[tool.starling.serve] port`;
    STARLING_SERVE_PORTS="users=18001,agents=18002" moves them (`starling_devtools.services`).
    """
    if not any(member.is_service for member in MEMBERS.values()):
        session.log("No services yet: add one under services/ and it is served here.")
        return
    # the services and what they depend on, nothing else: no pytest, no test kit, no dev tools
    services = [member.distribution for member in MEMBERS.values() if member.is_service]
    sync(session, *[arg for name in services for arg in ("--package", name)])
    # Here, not at the top: the harness imports SQLAlchemy and httpx, which every other nox process
    # (twenty in the README's test command) would import for nothing.
    from starling_devtools import services as serving

    try:
        serving.serve(python=str(Path(session.bin) / "python"), root=ROOT, log=session.log)
    except ValueError as error:
        session.error(str(error))


# What `nox -s new` prints for STARLING_USERS_ROLE_SCOPES: the grants in force (that variable, or the users
# service's defaults) with the new service's scopes added, `<name>:read` for users and both for admins.
NEW_SERVICE_GRANTS = """
import json, sys
from starling_users.settings import UsersSettings
grants = UsersSettings().role_scopes
read, admin = sys.argv[1:]
for role, scopes in {"user": [read], "admin": [read, admin]}.items():
    grants[role] = list(dict.fromkeys(grants[role] + scopes))
print(json.dumps(grants))
"""


@nox.session(default=False)
def new(session: nox.Session) -> None:
    """Make services/<name> from the service template with copier, lock it, and say what comes next.

    `nox -s new -- inventory [--port 8010] [--description "..."]`. The port is otherwise the next one after
    every port the services declare in `[tool.starling.serve]`.
    """
    parser = argparse.ArgumentParser(prog="nox -s new --")
    parser.add_argument("name", help="lowercase letters, digits and underscores: services/<name>")
    parser.add_argument("--port", type=int, help="the port it is served on by default")
    parser.add_argument("--description", help="one line on what it is for")
    try:
        args = parser.parse_args(session.posargs)
    except SystemExit:
        session.error("usage: nox -s new -- <name> [--port PORT] [--description TEXT]")
    name: str = args.name
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
        session.error(f"{name!r}: a service name is lowercase letters, digits and underscores, from a letter")
    if name in MEMBERS or (ROOT / "services" / name).exists():
        where = MEMBERS[name].path if name in MEMBERS else Path("services", name)
        session.error(f"{name!r} exists already: {where}")
    from starling_devtools import harness  # see serve()

    declared = {other: found.port for other, found in harness.discover(ROOT).items()}
    port = args.port or max(declared.values()) + 1
    if taken := [other for other, used in declared.items() if used == port]:
        session.error(f"port {port} is taken by {taken[0]}; choose another with --port")

    # copier, and the users service to read the grants in force from
    if "users" in MEMBERS:
        sync(session, "--package", MEMBERS["users"].distribution, "--group", "template")
    else:
        sync(session, "--only-group", "template")
    data = {"name": name, "port": str(port)} | ({"description": args.description} if args.description else {})
    # The template is this repository (copier.yml at its root, the files in packages/devtools/template):
    # copier renders it as it is in the working tree (HEAD and any uncommitted change), offline, and records
    # the answers and the commit in services/<name>/.copier-answers.yml, from which `copier update` later
    # replays the template's changes.
    session.chdir(ROOT)
    session.run(
        "copier",
        "copy",
        "--quiet",
        "--defaults",
        "--vcs-ref=HEAD",
        *[arg for key, value in data.items() for arg in ("--data", f"{key}={value}")],
        ".",
        f"services/{name}",
    )
    session.run("uv", "lock")  # the new member enters the lock, with nothing else changed
    grants = ""
    if "users" in MEMBERS:
        output = session.run("python", "-c", NEW_SERVICE_GRANTS, f"{name}:read", f"{name}:admin", silent=True)
        grants = str(output).strip()
    # Then the contract, services/<name>/openapi.json, from the app's own document: its suite's contract test
    # writes it when asked, and from then on holds the two equal.
    sync(session, "--package", f"starling-{name}", "--group", "test")
    session.run(
        "python", "-m", "pytest", f"services/{name}/tests/test_openapi_contract.py",
        "-q", "-p", "no:cacheprovider", env={"STARLING_REFRESH_CONTRACT": "1"}, silent=True,
    )  # fmt: skip
    lines = [
        f"\nservices/{name}: starling-{name}, import starling_{name}, port {port},",
        f"scopes {name}:read (users) and {name}:admin (administrators). Next:",
        f'  uv run nox -s lint typecheck "tests({name})" "tests_postgres({name})"',
        f"  uv run --package starling-{name} starling-migrate {name} revision -m '...'  # models.py changed",
        f"  uv run --package starling-{name} starling-migrate {name} upgrade",
        f"  git add services/{name} uv.lock   # openapi.json is the contract: commit it with any API change",
    ]
    if grants:
        lines += [
            "",
            "The users service grants scopes by role; these beside the grants in force, for `nox -s serve`:",
            f"  export STARLING_USERS_ROLE_SCOPES='{grants}'",
        ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def run_tool(session: nox.Session, module: str) -> None:
    """Run one of starling_devtools' command-line tools with every member installed."""
    sync(session, "--all-packages", "--all-groups")
    session.run("python", "-m", module, *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Measure test isolation, request and serving costs as ratios against references in the same run."""
    run_tool(session, "starling_devtools.bench")


@nox.session
def soak(session: nox.Session) -> None:
    """Every service under a bounded load while tokens are revoked, then every accepted write counted."""
    run_tool(session, "starling_devtools.soak")


@nox.session(tags=["postgres"])
def faults(session: nox.Session) -> None:
    """PostgreSQL stopped and restarted, agents killed, an upstream and the broker dropping connections."""
    run_tool(session, "starling_devtools.faults")


@nox.session
def fuzz(session: nox.Session) -> None:
    """schemathesis against every service's /openapi.json, with tokens, over real HTTP."""
    run_tool(session, "starling_devtools.fuzz")
