"""`nox -s new`'s template: a service made from it passes lint, the architecture rules, typecheck and its own
suite as it comes, in a workspace laid out as this one; and `nox -s new` refuses what it cannot make.

The service is rendered into a temporary workspace (this repository's root `pyproject.toml`, and its shared
packages linked in), never into services/.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import warnings
from pathlib import Path

import httpx
import pytest
import yaml
from copier import run_copy
from copier.errors import DirtyLocalWarning

from starling_devtools import harness

# Sorted before starling_core and starling_testkit, which the template's import blocks must follow.
NAME = "catalog"


def render(repo_root: Path, workspace: Path, name: str, **data: object) -> Path:
    service = workspace / "services" / name
    # A working tree with uncommitted changes is what a template author tests: copier says so, as it should.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DirtyLocalWarning)
        run_copy(
            str(repo_root),  # copier.yml at the root; the files in packages/devtools/template
            service,
            vcs_ref="HEAD",  # the working tree as it is, uncommitted changes included
            data={"name": name, "port": 8005, **data},
            defaults=True,
            quiet=True,
        )
    return service


def new_workspace(repo_root: Path, root: Path) -> Path:
    """A workspace with this repository's tool configuration and shared packages, and no service yet."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy(repo_root / "pyproject.toml", root / "pyproject.toml")
    for shared in ("packages", "testkit"):
        (root / shared).symlink_to(repo_root / shared, target_is_directory=True)
    return root


def run(*command: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def workspace(repo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = new_workspace(repo_root, tmp_path_factory.mktemp("new-service") / "workspace")
    render(repo_root, root, NAME)
    return root


def test_the_service_has_the_standard_files_and_records_its_answers(workspace: Path) -> None:
    service = workspace / "services" / NAME
    package = service / "src" / f"starling_{NAME}"

    modules = {path.name for path in package.glob("*.py")}
    assert modules == {f"{module}.py" for module in ("__init__", "app", "errors", "main", "models")} | {
        f"{module}.py" for module in ("repository", "routes", "schemas", "service", "settings")
    }
    assert [path.name for path in (package / "migrations").iterdir()] == ["versions"]
    assert [path.name for path in (package / "migrations" / "versions").iterdir()] == [f"0001_{NAME}.py"]
    assert {path.name for path in (service / "tests").glob("test_*.py")} == {
        "test_routes.py",
        "test_service.py",
        "test_repository.py",
        "test_migrations.py",
        "test_openapi_contract.py",
        "test_hostile_input.py",
    }
    project = tomllib.loads((service / "pyproject.toml").read_text())
    assert project["project"]["name"] == f"starling-{NAME}"
    assert project["tool"]["starling"] == {"tests": {"workers": 0, "dist": "load"}, "serve": {"port": 8005}}
    assert project["tool"]["uv"]["sources"]["starling-core"] == {"workspace": True}
    answers = yaml.safe_load((service / ".copier-answers.yml").read_text())
    assert answers["name"] == NAME
    assert answers["port"] == 8005
    # the repository the template is the root of, and the commit it was at: what `copier update` needs
    assert (Path(answers["_src_path"]) / "copier.yml").is_file()
    assert answers["_commit"]
    readme = (service / "README.md").read_text()
    assert f"starling-migrate {NAME} revision -m" in readme
    assert f"starling-migrate {NAME} upgrade" in readme
    assert "STARLING_USERS_ROLE_SCOPES" in readme


@pytest.mark.parametrize("name", ["inventory", "zebra", "warehouse_stock_2026", "b2"])
def test_a_service_of_any_valid_name_passes_ruff(repo_root: Path, tmp_path: Path, name: str) -> None:
    workspace = new_workspace(repo_root, tmp_path / "workspace")
    render(repo_root, workspace, name, description="A service with a long name and a long description" * 2)

    for check in (["check", "--no-cache", "services"], ["format", "--no-cache", "--check", "services"]):
        result = run(sys.executable, "-m", "ruff", *check, cwd=workspace)
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_service_passes_ruff_and_the_architecture_rules(workspace: Path) -> None:
    for check in (["check", "--no-cache", "services"], ["format", "--no-cache", "--check", "services"]):
        result = run(sys.executable, "-m", "ruff", *check, cwd=workspace)
        assert result.returncode == 0, result.stdout + result.stderr

    result = run(
        sys.executable, "-m", "starling_devtools.architecture", "--root", str(workspace), cwd=workspace
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "routes and services import nothing from SQLAlchemy" in result.stdout


def test_the_service_passes_mypy_strict(repo_root: Path, workspace: Path) -> None:
    service = Path("services") / NAME
    # A cache kept between runs: the rendered workspace is new each run, but what takes mypy its ten CPU
    # seconds is the installed libraries, which are not. It still checks the service's files (their paths
    # are new), and finds an error put in them, as tried by hand.
    cache = repo_root / ".mypy_cache" / "rendered-service"

    result = run(
        sys.executable, "-m", "mypy", str(service / "src"), str(service / "tests"),
        cwd=workspace, env={"MYPY_CACHE_DIR": str(cache)},
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_services_own_suite_passes_as_it_comes(workspace: Path) -> None:
    service = workspace / "services" / NAME
    pytest_run = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q")
    source = {"PYTHONPATH": str(service / "src")}

    # The contract is not in the template: `nox -s new` writes it from the app, as here, and then it holds.
    contract = service / "openapi.json"
    missing = run(*pytest_run, str(service / "tests" / "test_openapi_contract.py"), cwd=workspace, env=source)
    assert missing.returncode == 1
    assert "openapi.json is missing" in missing.stdout
    written = run(
        *pytest_run, str(service / "tests" / "test_openapi_contract.py"),
        cwd=workspace, env={**source, "STARLING_REFRESH_CONTRACT": "1"},
    )  # fmt: skip
    assert written.returncode == 0, written.stdout + written.stderr
    assert f"/api/v1/{NAME}/{{item_id}}" in json.loads(contract.read_text())["paths"]

    result = run(*pytest_run, str(service / "tests"), cwd=workspace, env=source)

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ passed in .*", summary), summary


@pytest.mark.parametrize(
    ("args", "refusal"),
    [
        (["users"], "'users' exists already: services/users"),
        (["Stock"], "lowercase letters, digits and underscores"),
        (["stock", "--port", "8001"], "port 8001 is taken by users"),
    ],
)
def test_nox_new_refuses_what_it_cannot_make(repo_root: Path, args: list[str], refusal: str) -> None:
    result = run(sys.executable, "-m", "nox", "-s", "new", "--", *args, cwd=repo_root)

    assert result.returncode != 0
    assert refusal in result.stderr
    assert not (repo_root / "services" / "stock").exists()


# --- the tools find a new service with no edit --------------------------------------------------------


def tool(workspace: Path, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """One of the workspace tools, run on the rendered workspace: the harness finds its services there."""
    command = [sys.executable, "-m", f"starling_devtools.{module}", "--root", str(workspace), *args]
    return subprocess.run(command, cwd=workspace, capture_output=True, text=True, timeout=600)


def test_a_new_service_is_served_with_its_port_and_source(workspace: Path, tmp_path: Path) -> None:
    found = harness.discover(workspace)
    assert list(found) == [NAME]
    assert (found[NAME].port, found[NAME].offset) == (8005, 5)

    with harness.run(tmp_path, root=workspace) as stack:
        document = httpx.get(f"{stack.urls[NAME]}/openapi.json").json()
        assert f"/api/v1/{NAME}" in document["paths"]
        process = stack.running[NAME].process
        assert process.poll() is None
    assert process.poll() is not None
    assert stack.running == {}


def test_a_new_service_is_soaked_with_the_generic_load(workspace: Path) -> None:
    result = tool(workspace, "soak", "--seconds", "4", "--callers", "3")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{NAME}.GET /api/v1/{NAME}" in result.stdout
    assert f"[PASS] memory of {NAME}" in result.stdout


def test_a_new_service_is_fuzzed(workspace: Path) -> None:
    result = tool(workspace, "fuzz", "--max-examples", "2", "--seed", "1")

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout[result.stdout.index("fuzz summary") :]
    assert [line.split()[:2] for line in summary.splitlines() if "cases" in line] == [
        [NAME, "user"],
        [NAME, "anonymous"],
        [NAME, "admin"],
    ]


def test_a_new_service_meets_the_database_outage(workspace: Path) -> None:
    result = tool(workspace, "faults", "--only", "database")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"'{NAME}': '200->503->200'" in result.stdout
    assert f"{NAME}.GET /api/v1/{NAME}" in result.stdout
