"""A service made from the template takes the template's later changes with `copier update`, keeping its own.

The template is this repository (copier.yml at its root), so a clone of it stands for the repository a team
works in: a service is made and committed, the template changes in a later commit, and `copier update`
(run from the root, as packages/devtools/README.md says) replays that change onto the service.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import yaml

APP = Path("src", "starling_inventory", "app.py")
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


def answers(service: Path) -> dict[str, object]:
    recorded: dict[str, object] = yaml.safe_load((service / ".copier-answers.yml").read_text())
    return recorded


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

    made = copier(clone, "copy", "--data", "name=inventory", "--data", "port=8010", ".", "services/inventory")
    assert made.returncode == 0, made.stderr
    service = clone / "services" / "inventory"
    first = answers(service)
    assert (first["_src_path"], first["name"]) == (".", "inventory")
    assert first["_commit"]  # the template commit it was made from
    readme = service / "README.md"
    readme.write_text(readme.read_text() + "\nOur own notes.\n")  # the team's edit
    git(clone, "add", "-A")
    git(clone, "commit", "--quiet", "-m", "inventory, made and edited")

    template_app = clone / TEMPLATE_APP
    original = template_app.read_text()
    assert '"""The service; ' in original
    template_app.write_text(original.replace('"""The service; ', '"""The {{ name }} service; ', 1))
    git(clone, "commit", "--quiet", "-am", "the template names the service in create_app's docstring")

    updated = copier(clone, "update", "services/inventory")

    assert updated.returncode == 0, updated.stderr
    assert '"""The inventory service; ' in (service / APP).read_text()
    assert readme.read_text().endswith("\nOur own notes.\n")
    assert answers(service)["_commit"] != first["_commit"]
    assert list(service.rglob("*.rej")) == []  # nothing left for a person to merge
