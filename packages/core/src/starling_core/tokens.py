"""JWT access tokens: issued by the users service, verified by every service.

PyJWT (and the `cryptography` it loads for its asymmetric algorithms) is imported by what signs,
verifies or checks a key, not with this module: every app imports it, and a test run whose tests
build no app paid about 50 ms of start-up for it.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starling_core.settings import ServiceSettings

REQUIRED_CLAIMS = ("exp", "iat", "iss", "sub")
_ISSUED_CLAIMS = frozenset({"iat", "exp", "iss"})


@dataclass(frozen=True, slots=True)
class JWTConfig:
    # Out of the repr: with HS256 both keys are the shared secret, and a repr ends up in logs.
    signing_key: str = field(repr=False)
    verifying_key: str = field(repr=False)
    issuer: str
    algorithm: str = "HS256"
    leeway: float = 0

    def __post_init__(self) -> None:
        # A bad algorithm or key is refused when the service starts, not on its first request; "none"
        # would accept unsigned tokens, and a short HMAC secret only earns a warning from PyJWT.
        if self.algorithm == "none":
            raise ValueError("JWT algorithm 'none' would accept unsigned tokens")
        import jwt

        try:
            algorithm = jwt.get_algorithm_by_name(self.algorithm)
        except NotImplementedError:
            raise ValueError(f"Unsupported JWT algorithm {self.algorithm!r}") from None
        keys = {"verifying": self.verifying_key}
        if self.signing_key or self.algorithm.startswith("HS"):
            keys["signing"] = self.signing_key  # a service that only verifies has no private key
        for role, key in keys.items():
            try:
                problem = algorithm.check_key_length(algorithm.prepare_key(key))
            except (jwt.PyJWTError, ValueError, TypeError) as exc:
                raise ValueError(f"Invalid JWT {role} key for {self.algorithm}: {exc}") from exc
            if problem:
                raise ValueError(f"Invalid JWT {role} key for {self.algorithm}: {problem}")

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> JWTConfig:
        algorithm = settings.jwt_algorithm
        if algorithm.startswith("HS"):
            secret = settings.jwt_secret.get_secret_value()
            return cls(secret, secret, settings.jwt_issuer, algorithm)
        if not settings.jwt_public_key:
            raise ValueError(f"STARLING_JWT_PUBLIC_KEY is required to verify {algorithm} tokens")
        private_key = settings.jwt_private_key.get_secret_value() if settings.jwt_private_key else ""
        return cls(private_key, settings.jwt_public_key, settings.jwt_issuer, algorithm)


@dataclass(frozen=True, slots=True)
class TokenClaims:
    sub: str
    scopes: frozenset[str]
    expires_at: int
    claims: Mapping[str, Any]


class InvalidToken(Exception):
    pass


def issue_token(
    config: JWTConfig, *, sub: str, scopes: Sequence[str], expires_in: int = 1800, **claims: Any
) -> str:
    if reserved := _ISSUED_CLAIMS & claims.keys():
        raise TypeError(f"issue_token() sets {', '.join(sorted(reserved))} itself")
    if not config.signing_key:
        raise ValueError("This JWT configuration has no signing key")
    # time.time(), read per call, so that a frozen test clock moves expiry too. `iat` keeps milliseconds
    # (a NumericDate may have fractions, RFC 7519 section 2): a token issued just after its user's logout
    # is told from one issued just before it (starling_core.revocations).
    issued = time.time()
    payload = {
        **claims,
        "sub": sub,
        "scopes": list(scopes),
        # cut, never rounded up: an `iat` past the present is a token "not yet valid"
        "iat": math.floor(issued * 1000) / 1000,
        "exp": int(issued) + expires_in,
        "iss": config.issuer,
    }
    import jwt

    return jwt.encode(payload, config.signing_key, algorithm=config.algorithm)


def decode_token(config: JWTConfig, token: str) -> TokenClaims:
    import jwt  # a look-up in sys.modules once the app's JWTConfig has imported it

    try:
        payload = jwt.decode(
            token,
            config.verifying_key,
            # Pinned: the token's own header never chooses the algorithm (no "none", no HS256
            # signed with a public key).
            algorithms=[config.algorithm],
            issuer=config.issuer,
            leeway=config.leeway,
            options={"require": list(REQUIRED_CLAIMS)},
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("Token has expired") from exc
    except jwt.InvalidIssuerError as exc:
        raise InvalidToken("Invalid token issuer") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise InvalidToken(f"Invalid token: missing the {exc.claim!r} claim") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Invalid token") from exc

    scopes = _scopes(payload.get("scopes", []))
    times = (payload["iat"], payload["exp"])
    if scopes is None or not _storable_subject(payload["sub"]) or not all(map(_numeric_date, times)):
        raise InvalidToken("Invalid token")
    return TokenClaims(
        sub=payload["sub"],
        scopes=scopes,
        expires_at=int(payload["exp"]),
        claims=MappingProxyType(payload),
    )


# The longest subject a service keeps as an owner (their `owner` columns are 255 characters).
MAX_SUBJECT_LENGTH = 255
# What no database stores: PostgreSQL refuses NUL, and no driver encodes an unpaired surrogate.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _storable_subject(value: object) -> bool:
    # A string any service can store and compare as an owner. The users service signs its 36-character
    # ids; anything else comes from a leaked key or a bug, and would otherwise reach a database as a 500.
    return (
        isinstance(value, str) and 0 < len(value) <= MAX_SUBJECT_LENGTH and _UNSTORABLE.search(value) is None
    )


def _numeric_date(value: object) -> bool:
    # A JSON number (RFC 7519 section 2). PyJWT also takes text and booleans, and an integer past a
    # float's range, which the revocation check (`float(iat)`) could not compare: a 500.
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _scopes(value: object) -> frozenset[str] | None:
    # A list of strings as Starling writes it, or one space separated string (OAuth's "scope" style).
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(scope, str) for scope in value):
        return frozenset(value)
    return None
