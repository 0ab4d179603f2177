"""A service made from the template takes the template's later changes with `copier update`, keeping its own.

The template is this repository (copier.yml at its root), so a clone of it stands for the repository a team
works in: a service is made and committed, the template changes in a later commit, and `copier update`
(run from the root, as packages/devtools/README.md says) replays that change onto the service.
"""

from __future__ import annotations

import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

TEMPLATE = Path("packages", "devtools", "template")
TEMPLATE_APP = TEMPLATE / "service" / "src" / "starling_{{ name }}" / "app.py.jinja"


def git(clone: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
        cwd=clone,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout


def copier(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copier", *args, "--defaults", "--quiet", "--vcs-ref=HEAD"],
        cwd=clone,
        capture_output=True,
        text=True,
        timeout=120,
    )


def unused_name(repo_root: Path, base: str = "inventory") -> str:
    """A service name no member has yet: a team that names its own service `inventory`, as the README's
    example does, must not make this test's copy land on it."""
    taken = {path.name for path in (repo_root / "services").iterdir()}
    names = itertools.chain([base], (f"{base}_{number}" for number in itertools.count(2)))
    return next(name for name in names if name not in taken)


def answers(service: Path) -> dict[str, object]:
    recorded: dict[str, object] = yaml.safe_load((service / ".copier-answers.yml").read_text())
    return recorded


def test_the_name_for_the_copy_is_one_no_service_has(tmp_path: Path) -> None:
    for taken in ("users", "inventory", "inventory_2"):
        (tmp_path / "services" / taken).mkdir(parents=True)
    assert unused_name(tmp_path) == "inventory_3"
    assert unused_name(tmp_path, "zebra") == "zebra"


def test_copier_update_replays_a_template_change_onto_a_service_and_keeps_its_edits(
    repo_root: Path, tmp_path: Path
) -> None:
    clone = tmp_path / "repo"
    git(tmp_path, "clone", "--quiet", "--no-hardlinks", str(repo_root), str(clone))
    # the template under test is this checkout's, uncommitted changes included
    shutil.copy(repo_root / "copier.yml", clone / "copier.yml")
    shutil.rmtree(clone / TEMPLATE)
    shutil.copytree(repo_root / TEMPLATE, clone / TEMPLATE, ignore=shutil.ignore_patterns("__pycache__"))
    git(clone, "add", "-A")
    git(clone, "commit", "--quiet", "--allow-empty", "-m", "the template as it is")

    name = unused_name(repo_root)
    made = copier(clone, "copy", "--data", f"name={name}", "--data", "port=8010", ".", f"services/{name}")
    assert made.returncode == 0, made.stderr
    service = clone / "services" / name
    first = answers(service)
    assert (first["_src_path"], first["name"]) == (".", name)
    assert first["_commit"]  # the template commit it was made from
    readme = service / "README.md"
    readme.write_text(readme.read_text() + "\nOur own notes.\n")  # the team's edit
    git(clone, "add", "-A")
    git(clone, "commit", "--quiet", "-m", f"{name}, made and edited")

    template_app = clone / TEMPLATE_APP
    original = template_app.read_text()
    assert '"""The service; ' in original
    template_app.write_text(original.replace('"""The service; ', '"""The {{ name }} service; ', 1))
    git(clone, "commit", "--quiet", "-am", "the template names the service in create_app's docstring")

    updated = copier(clone, "update", f"services/{name}")

    assert updated.returncode == 0, updated.stderr
    assert f'"""The {name} service; ' in (service / "src" / f"starling_{name}" / "app.py").read_text()
    assert readme.read_text().endswith("\nOur own notes.\n")
    assert answers(service)["_commit"] != first["_commit"]
    assert list(service.rglob("*.rej")) == []  # nothing left for a person to merge
