"""The contract in the repository: a service's OpenAPI document, checked in beside its README.

Each service's suite has one test that asks the app for `/openapi.json` and compares it with
`services/<name>/openapi.json`:

    async def test_the_openapi_document_is_the_checked_in_contract(client: httpx.AsyncClient) -> None:
        await check_openapi_contract(client, Path(__file__).parents[1] / "openapi.json")

A route, a schema or a status that changes without the file changing fails that test, with the
difference and the command that writes the file again; the file's diff then shows the change to the
contract in review. With `STARLING_REFRESH_CONTRACT=1` the test writes the app's document instead:

    STARLING_REFRESH_CONTRACT=1 uv run nox -s "tests(users)" -- -k openapi_contract
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest

REFRESH_VARIABLE = "STARLING_REFRESH_CONTRACT"
MAX_DIFF_LINES = 60


def render(document: Any) -> str:
    """The document as it is kept: indented, keys in the app's order (paths as the routes list them)."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def refreshing() -> bool:
    return os.environ.get(REFRESH_VARIABLE, "").strip().lower() in ("1", "true", "yes")


def compare(document: Any, path: Path, *, refresh: bool = False) -> str | None:
    """None when `path` holds `document` (after writing it, when `refresh`), else why it does not."""
    expected = render(document)
    if refresh:
        if not path.exists() or path.read_text() != expected:
            path.write_text(expected)
        return None
    if not path.exists():
        return f"{path} is missing: the contract is not in the repository yet."
    kept = path.read_text()
    if json.loads(kept) == document:
        return None
    diff = list(
        difflib.unified_diff(
            kept.splitlines(),
            expected.splitlines(),
            f"{path.name} (checked in)",
            "/openapi.json (the app)",
            lineterm="",
        )
    )
    shown = diff[:MAX_DIFF_LINES] + (
        [f"... {len(diff) - MAX_DIFF_LINES} more lines"] if len(diff) > MAX_DIFF_LINES else []
    )
    return f"{path} differs from the app's /openapi.json:\n" + "\n".join(shown)


async def check_openapi_contract(client: httpx.AsyncClient, path: Path) -> None:
    """Fail unless `path` holds the app's `/openapi.json`; with STARLING_REFRESH_CONTRACT=1, write it."""
    response = await client.get("/openapi.json")
    assert response.status_code == 200, f"/openapi.json answered {response.status_code}"
    problem = compare(response.json(), path, refresh=refreshing())
    if problem is not None:
        pytest.fail(
            f"{problem}\nIf the change is meant, write the file again and commit it with the change:\n"
            f'  {REFRESH_VARIABLE}=1 uv run nox -s "tests(<service>)" -- -k openapi_contract',
            pytrace=False,
        )
