"""What an access token carries, and what is kept of a refresh token."""

from __future__ import annotations

from typing import Any

import pytest

from starling_core.tokens import JWTConfig, decode_token, issue_token
from starling_users.models import User
from starling_users.tokens import AccessTokens, Credentials, new_refresh_token, refresh_digest

SECRET = "a-test-secret-of-at-least-32-bytes!"
CONFIG = JWTConfig(SECRET, SECRET, "tests")


def test_an_access_token_carries_the_role_scopes_a_unique_id_and_the_token_version() -> None:
    tokens = AccessTokens(
        CONFIG, expires_in=60, role_scopes={"user": ["a:read"], "admin": ["a:read", "a:admin"]}
    )
    user = User(id="u1", role="admin", token_version=7)

    first, second = tokens.issue(user), tokens.issue(user)

    assert (first.expires_in, first.scopes) == (60, ("a:read", "a:admin"))
    claims = decode_token(CONFIG, first.token)
    assert (claims.sub, claims.scopes, claims.claims["ver"]) == ("u1", frozenset({"a:read", "a:admin"}), 7)
    assert claims.claims["jti"] != decode_token(CONFIG, second.token).claims["jti"]
    assert Credentials.from_claims(claims) == Credentials("u1", 7)


@pytest.mark.parametrize("ver", [None, "7", 7.0, True], ids=["missing", "string", "float", "bool"])
def test_a_token_without_an_integer_version_matches_no_user(ver: object) -> None:
    claims: dict[str, Any] = {} if ver is None else {"ver": ver}
    decoded = decode_token(CONFIG, issue_token(CONFIG, sub="u1", scopes=[], **claims))
    assert Credentials.from_claims(decoded).version is None


def test_refresh_tokens_are_random_and_only_their_digest_is_kept() -> None:
    first, second = new_refresh_token(), new_refresh_token()
    assert first != second
    assert len(first) >= 43  # 256 bits, URL-safe base64
    assert refresh_digest(first) == refresh_digest(first)
    assert first not in refresh_digest(first)
    assert len(refresh_digest(first)) == 64
