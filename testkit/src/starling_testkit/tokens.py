"""Bearer tokens for tests, signed the way the app under test verifies them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from starling_core.tokens import JWTConfig, issue_token

TEST_JWT_SECRET = "starling-testkit-secret-0123456789abcdef"
DEFAULT_SUB = "test-user-001"
ADMIN_SUB = "test-admin-001"


class TokenFactory(Protocol):
    """The `token_factory` fixture: a signed bearer token for `sub` holding `scopes`."""

    def __call__(
        self,
        sub: str = DEFAULT_SUB,
        scopes: Sequence[str] | None = None,
        expires_in: int = 1800,
        secret: str | None = None,
        **claims: Any,
    ) -> str: ...


def make_token_factory(config: JWTConfig, *, default_scopes: Sequence[str] = ()) -> TokenFactory:
    """Tokens signed as `config` says; `scopes=None` means `default_scopes`."""

    def token_factory(
        sub: str = DEFAULT_SUB,
        scopes: Sequence[str] | None = None,
        expires_in: int = 1800,
        secret: str | None = None,
        **claims: Any,
    ) -> str:
        # `secret` signs with another HS256 key (32 bytes or more): the way to get a wrongly signed token.
        signing = (
            config
            if secret is None
            else replace(config, signing_key=secret, verifying_key=secret, algorithm="HS256")
        )
        granted = default_scopes if scopes is None else scopes
        return issue_token(signing, sub=sub, scopes=list(granted), expires_in=expires_in, **claims)

    return token_factory
