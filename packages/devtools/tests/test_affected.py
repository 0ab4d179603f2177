"""The selection `nox -s affected -- <ref>` makes, proved on a throwaway git repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from starling_devtools.affected import changed_files, main, selection

ROOT_PYPROJECT = """
[tool.uv.workspace]
members = ["packages/*", "services/*", "testkit"]
"""


def member(root: Path, folder: str, name: str, dependencies: list[str], test: list[str]) -> None:
    path = root / folder
    (path / "src").mkdir(parents=True)
    (path / "src" / "module.py").write_text("VALUE = 1\n")
    (path / "pyproject.toml").write_text(
        f'[project]\nname = "{name}"\nversion = "0.1.0"\ndependencies = {dependencies!r}\n'
        f"[dependency-groups]\ntest = {test!r}\n"
    )


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def commit_all(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "pyproject.toml").write_text(ROOT_PYPROJECT)
    (tmp_path / "README.md").write_text("# workspace\n")
    (tmp_path / "uv.lock").write_text("version = 1\n")
    member(tmp_path, "packages/core", "starling-core", ["httpx>=0.28"], ["pytest", "starling-testkit"])
    member(tmp_path, "testkit", "starling-testkit", ["starling-core", "pytest>=9"], ["pytest"])
    member(
        tmp_path, "services/users", "starling-users", ["starling-core", "argon2-cffi"], ["starling-testkit"]
    )
    member(tmp_path, "services/agents", "starling-agents", ["starling-core"], ["starling-testkit"])
    member(tmp_path, "packages/devtools", "starling-devtools", ["httpx"], ["pytest"])
    git(tmp_path, "init", "-q", "-b", "main")
    commit_all(tmp_path, "start")
    return tmp_path


def selected(repo: Path, ref: str = "HEAD~1") -> set[str]:
    return selection(repo, ref)


def test_a_change_in_one_service_selects_only_that_service(repo: Path) -> None:
    (repo / "services/users/src/module.py").write_text("VALUE = 2\n")
    commit_all(repo, "users only")

    assert changed_files(repo, "HEAD~1") == ["services/users/src/module.py"]
    assert selected(repo) == {"users"}


def test_a_change_in_core_selects_everything_built_on_it(repo: Path) -> None:
    (repo / "packages/core/src/module.py").write_text("VALUE = 2\n")
    commit_all(repo, "core")

    assert selected(repo) == {"core", "testkit", "users", "agents"}


def test_a_change_in_the_kit_selects_every_suite_using_it(repo: Path) -> None:
    (repo / "testkit/src/module.py").write_text("VALUE = 2\n")
    commit_all(repo, "kit")

    assert selected(repo) == {"testkit", "core", "users", "agents"}


def test_the_lock_or_root_configuration_selects_every_member(repo: Path) -> None:
    (repo / "uv.lock").write_text("version = 2\n")
    commit_all(repo, "lock")

    assert selected(repo) == {"core", "testkit", "users", "agents", "devtools"}


def lock(*packages: tuple[str, str, str]) -> str:
    """A lock in uv's layout: `(name, version, source)` packages, the members listed in the manifest."""
    members = [name for name, _, source in packages if not source.startswith("registry")]
    text = f'version = 1\nrequires-python = ">=3.11"\n\n[manifest]\nmembers = {members!r}\n'
    for name, version, source in packages:
        where = (
            f'{{ editable = "{source}" }}' if not source.startswith("registry") else '{ registry = "pypi" }'
        )
        text += f'\n[[package]]\nname = "{name}"\nversion = "{version}"\nsource = {where}\n'
    return text


BEFORE = [
    ("starling-core", "0.1.0", "packages/core"),
    ("starling-users", "0.1.0", "services/users"),
    ("httpx", "0.28.1", "registry"),
]


def test_a_lock_that_only_gains_a_new_member_selects_that_member(repo: Path) -> None:
    (repo / "uv.lock").write_text(lock(*BEFORE))
    commit_all(repo, "the lock")
    member(repo, "services/inventory", "starling-inventory", ["starling-core"], ["starling-testkit"])
    (repo / "uv.lock").write_text(lock(*BEFORE, ("starling-inventory", "0.1.0", "services/inventory")))
    commit_all(repo, "a new service")

    assert selected(repo) == {"inventory"}


def test_a_lock_whose_outside_packages_changed_selects_every_member(repo: Path) -> None:
    (repo / "uv.lock").write_text(lock(*BEFORE))
    commit_all(repo, "the lock")
    (repo / "uv.lock").write_text(lock(*BEFORE[:2], ("httpx", "0.28.2", "registry")))
    commit_all(repo, "httpx upgraded")

    assert selected(repo) == {"core", "testkit", "users", "agents", "devtools"}


def test_prose_outside_the_members_selects_nothing(repo: Path) -> None:
    (repo / "README.md").write_text("# workspace, explained\n")
    commit_all(repo, "docs")

    assert selected(repo) == set()


def test_uncommitted_and_new_files_count_too(repo: Path) -> None:
    (repo / "services/agents/src/new.py").write_text("NEW = True\n")

    assert selected(repo, "HEAD") == {"agents"}


def test_a_branch_is_compared_with_its_merge_base(repo: Path) -> None:
    git(repo, "checkout", "-q", "-b", "feature")
    (repo / "services/agents/src/module.py").write_text("VALUE = 2\n")
    commit_all(repo, "agents on the branch")
    git(repo, "checkout", "-q", "main")
    (repo / "services/users/src/module.py").write_text("VALUE = 3\n")
    commit_all(repo, "users on main meanwhile")
    git(repo, "checkout", "-q", "feature")

    # what main did since the branch started is not the branch's change
    assert selected(repo, "main") == {"agents"}


def test_the_command_prints_one_member_per_line(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "services/users/src/module.py").write_text("VALUE = 2\n")
    commit_all(repo, "users only")

    assert main(["HEAD~1", "--root", str(repo)]) == 0
    assert capsys.readouterr().out == "users\n"


def test_an_unknown_ref_is_an_error(repo: Path) -> None:
    with pytest.raises(subprocess.CalledProcessError):
        changed_files(repo, "no-such-ref")
