"""The architecture contracts are built for whatever members exist, and import-linter enforces them."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from starling_devtools import architecture, workspace


def member(root: Path, folder: str, package: str, modules: dict[str, str]) -> None:
    (root / folder).mkdir(parents=True)
    (root / folder / "pyproject.toml").write_text(f'[project]\nname = "{package.replace("_", "-")}"\n')
    source = root / folder / "src" / package
    source.mkdir(parents=True)
    (source / "__init__.py").write_text("")
    for name, text in modules.items():
        (source / f"{name}.py").write_text(textwrap.dedent(text))


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "pyproject.toml").write_text('[tool.uv.workspace]\nmembers = ["packages/*", "services/*"]\n')
    member(tmp_path, "packages/core", "fake_core", {"app": "import json\n"})
    member(
        tmp_path,
        "services/alpha",
        "fake_alpha",
        {"routes": "import json\n", "repository": "import sqlalchemy\n"},
    )
    member(tmp_path, "services/beta", "fake_beta", {"service": "from fake_core import app\n"})
    # the modules import-linter scans must not stay cached for the next test's workspace
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in [name for name in sys.modules if name.startswith("fake_")]:
        monkeypatch.delitem(sys.modules, name)
    return tmp_path


def test_the_contracts_name_every_member_found(root: Path) -> None:
    config = architecture.contracts(root, workspace.load(root))

    assert "forbidden_modules =\n    fake_alpha\n    fake_beta" in config  # core imports no service
    assert "type = independence\nmodules =\n    fake_alpha\n    fake_beta" in config
    assert "    fake_alpha.routes\n    fake_beta.service\nforbidden_modules =\n    sqlalchemy" in config


def test_a_workspace_that_follows_the_rules_passes(root: Path) -> None:
    assert architecture.main(["--root", str(root)]) == 0


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("services/beta/src/fake_beta/service.py", "from fake_alpha import routes\n"),
        ("services/alpha/src/fake_alpha/routes.py", "from sqlalchemy import select\n"),
        ("packages/core/src/fake_core/app.py", "import fake_beta\n"),
    ],
    ids=["a-service-imports-another", "a-route-builds-sql", "core-imports-a-service"],
)
def test_each_broken_rule_fails_the_check(root: Path, path: str, text: str) -> None:
    (root / path).write_text(text)
    assert architecture.main(["--root", str(root)]) == 1


def test_the_real_servers_package_is_held_to_stand_alone(repo_root: Path) -> None:
    config = architecture.contracts(repo_root, workspace.load(repo_root))

    assert "source_modules =\n    starling_servers\nforbidden_modules =\n    pytest\n" in config


@pytest.mark.parametrize(("text", "code"), [("import socket\n", 0), ("import pytest\n", 1)])
def test_a_standalone_package_may_not_import_pytest(
    root: Path, monkeypatch: pytest.MonkeyPatch, text: str, code: int
) -> None:
    monkeypatch.setattr(architecture, "STANDALONE", {"fake_servers": ("pytest", "fake_core")})
    member(root, "packages/servers", "fake_servers", {"postgres": text})
    assert architecture.main(["--root", str(root)]) == code
