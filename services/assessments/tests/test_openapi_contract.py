"""The contract the README describes is `openapi.json` beside it: the app's own document, kept equal."""

from __future__ import annotations

from pathlib import Path

import httpx

from starling_testkit.contract import check_openapi_contract


async def test_the_openapi_document_is_the_checked_in_contract(client: httpx.AsyncClient) -> None:
    await check_openapi_contract(client, Path(__file__).parents[1] / "openapi.json")
