"""The contract in the repository: the checked-in OpenAPI document against the app's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from starling_testkit.contract import REFRESH_VARIABLE, compare, refreshing, render

DOCUMENT: dict[str, Any] = {"openapi": "3.1.0", "paths": {"/b": {"get": {}}, "/a": {"post": {}}}}


def test_a_kept_document_equal_to_the_apps_passes(tmp_path: Path) -> None:
    kept = tmp_path / "openapi.json"
    kept.write_text(render(DOCUMENT))

    assert compare(DOCUMENT, kept) is None


def test_a_changed_route_fails_showing_the_difference(tmp_path: Path) -> None:
    kept = tmp_path / "openapi.json"
    kept.write_text(render(DOCUMENT))
    changed = {**DOCUMENT, "paths": {**DOCUMENT["paths"], "/c": {"delete": {}}}}

    problem = compare(changed, kept)

    assert problem is not None
    assert '+    "/c": {' in problem


def test_a_missing_contract_fails_and_refreshing_writes_it_in_the_apps_order(tmp_path: Path) -> None:
    kept = tmp_path / "openapi.json"

    assert "missing" in (compare(DOCUMENT, kept) or "")
    assert compare(DOCUMENT, kept, refresh=True) is None

    assert json.loads(kept.read_text()) == DOCUMENT
    assert list(json.loads(kept.read_text())["paths"]) == ["/b", "/a"]
    assert kept.read_text().endswith("}\n")


def test_refreshing_is_asked_for_with_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REFRESH_VARIABLE, raising=False)
    assert not refreshing()
    monkeypatch.setenv(REFRESH_VARIABLE, "1")
    assert refreshing()
