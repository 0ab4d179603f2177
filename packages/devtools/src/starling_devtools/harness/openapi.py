"""The load for a service the soak does not know: its `/health`, and every GET its OpenAPI document
declares that needs no parameter, with a token holding every scope the document names.

This is what makes a service added under `services/` (one `nox -s new` made, say) soaked with no edit
here: its answers join the same checks as the others' (no 5xx, every request answered, only 2xx).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from starling_devtools.harness import bearer, declared_scopes


@dataclass(frozen=True)
class Operation:
    label: str
    url: str
    headers: dict[str, str]


def plain_gets(document: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """Every GET path of a document that takes no parameter but the optional, and whether it is guarded."""
    found = []
    for path, methods in document.get("paths", {}).items():
        get = methods.get("get")
        if not get or "{" in path or path in ("/health", "/openapi.json", "/metrics"):
            continue
        if not any(parameter.get("required") for parameter in get.get("parameters", [])):
            found.append((path, bool(get.get("security"))))
    return found


def operations(
    client: httpx.Client, services: dict[str, str], mint: Callable[[Iterable[str]], str]
) -> list[Operation]:
    """Each service's generic operations; `mint(scopes)` makes the token they are sent with."""
    found = []
    for name, url in services.items():
        document = client.get(f"{url}/openapi.json").raise_for_status().json()
        headers = bearer(mint(sorted(declared_scopes(document))))
        found.append(Operation(f"{name}.health", f"{url}/health", {}))
        found += [
            Operation(f"{name}.GET {path}", f"{url}{path}", headers) for path, _ in plain_gets(document)
        ]
    return found
