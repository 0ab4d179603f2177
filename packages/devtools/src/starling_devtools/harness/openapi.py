"""What a service's OpenAPI document tells a tool that does not know the service: the scopes it checks,
and the operations any caller can send without inventing data (its `/health`, and every GET that needs
no parameter). The soak's and the fault runs' generic load is made of these, which is what puts a
service added under `services/` (one `nox -s new` made, say) under load with no edit to a tool.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from starling_devtools.harness.tokens import bearer


@dataclass(frozen=True)
class Operation:
    label: str
    url: str
    headers: dict[str, str]


def declared_scopes(document: Mapping[str, Any]) -> set[str]:
    """Every scope an OpenAPI document's operations ask for."""
    scopes: set[str] = set()
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, Mapping):
                for requirement in operation.get("security", []):
                    for names in requirement.values():
                        scopes.update(names)
    return scopes


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
