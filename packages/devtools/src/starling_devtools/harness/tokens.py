"""Tokens for a tool's callers: by the users service's real login, or minted (`Environment.mint`).

A login is what a client does, and the only way to a token the users service itself accepts (it
checks the caller's row on every request). A minted token serves a tool that runs without the users
service, or that needs scopes no role is granted: those a new service's OpenAPI document declares.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def login(client: httpx.Client, users_url: str, email: str, password: str) -> dict[str, Any]:
    """The users service's answer to a login: `access_token`, `refresh_token`, ..."""
    response = client.post(f"{users_url}/auth/token", json={"email": email, "password": password})
    response.raise_for_status()
    answer: dict[str, Any] = response.json()
    return answer


def register(client: httpx.Client, users_url: str, email: str, password: str) -> None:
    """Register a user; one registered already (409) is as good."""
    body = {"name": email.split("@")[0], "email": email, "password": password}
    response = client.post(f"{users_url}/users", json=body)
    if response.status_code != 409:
        response.raise_for_status()


def issued(answer: Mapping[str, Any]) -> set[str]:
    """The tokens in a login's answer (the access token, and a refresh token where there is one)."""
    return {value for key, value in answer.items() if key.endswith("token") and isinstance(value, str)}
