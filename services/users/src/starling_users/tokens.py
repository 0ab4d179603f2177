"""What the users service's tokens carry: signed access tokens, and the opaque refresh tokens beside them."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from starling_core.tokens import JWTConfig, TokenClaims, issue_token
from starling_users.models import User

# The claim that holds the user's token version at issue; `User.token_version` says which is current.
VERSION_CLAIM = "ver"


@dataclass(frozen=True, slots=True)
class Credentials:
    """Who a verified access token says its bearer is. Only the user's row says what they may do."""

    user_id: str
    version: int | None  # None when the token carries no usable `ver`: no user's version matches it

    @classmethod
    def from_claims(cls, claims: TokenClaims) -> Credentials:
        version = claims.claims.get(VERSION_CLAIM)
        # bool is an int in Python, and `true` is no version
        return cls(claims.sub, version if type(version) is int else None)


@dataclass(frozen=True, slots=True)
class AccessToken:
    token: str
    expires_in: int
    scopes: tuple[str, ...]


class AccessTokens:
    """Signs a user's access token: their role's scopes, a unique `jti` and their token version (`ver`),
    for `expires_in` seconds."""

    def __init__(self, jwt: JWTConfig, *, expires_in: int, role_scopes: Mapping[str, Sequence[str]]) -> None:
        self.jwt = jwt
        self.expires_in = expires_in
        self.role_scopes = {role: tuple(scopes) for role, scopes in role_scopes.items()}

    def issue(self, user: User) -> AccessToken:
        scopes = self.role_scopes[user.role]
        token = issue_token(
            self.jwt,
            sub=user.id,
            scopes=scopes,
            expires_in=self.expires_in,
            jti=uuid.uuid4().hex,
            **{VERSION_CLAIM: user.token_version},
        )
        return AccessToken(token=token, expires_in=self.expires_in, scopes=scopes)


def new_refresh_token() -> str:
    """An opaque refresh token: 256 random bits, URL-safe."""
    return secrets.token_urlsafe(32)


def refresh_digest(token: str) -> str:
    """What is stored of a refresh token. A fast hash is enough for 256 random bits: there is no
    dictionary to try, and the database never holds a token that would work if read."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
