from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from starling_core.settings import ServiceSettings
from starling_core.tokens import InvalidToken, JWTConfig, decode_token, issue_token
from starling_testkit import FrozenClock

# 64 bytes, long enough for HS512 too, so that the other-algorithm test fails on the algorithm alone.
SECRET = "starling-tests-secret-".ljust(64, "x")
CONFIG = JWTConfig(signing_key=SECRET, verifying_key=SECRET, issuer="starling-users")


def ed25519_pems() -> tuple[str, str]:
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private.decode(), public.decode()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def valid_payload() -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "user-1", "scopes": ["agent:read"], "iat": now, "exp": now + 60, "iss": "starling-users"}


async def test_issued_token_decodes_to_its_claims() -> None:
    token = issue_token(CONFIG, sub="user-1", scopes=["agent:read", "agent:run"], role="user")

    claims = decode_token(CONFIG, token)

    assert claims.sub == "user-1"
    assert claims.scopes == frozenset({"agent:read", "agent:run"})
    assert claims.claims["role"] == "user"
    assert claims.claims["iss"] == "starling-users"
    assert claims.expires_at == int(claims.claims["iat"]) + 1800
    # `iat` keeps milliseconds: a token issued just after a revocation is told from one just before it
    assert claims.claims["iat"] == round(claims.claims["iat"], 3)
    assert isinstance(claims.claims["iat"], float)


@pytest.mark.parametrize("micros", [0, 999_600, 999_999])
def test_iat_keeps_the_milliseconds_it_has_and_never_passes_the_present(
    frozen_clock: FrozenClock, micros: int
) -> None:
    frozen_clock.move_to(datetime(2026, 6, 1, 12, 0, 0, micros, tzinfo=UTC))
    now = time.time()

    claims = decode_token(CONFIG, issue_token(CONFIG, sub="user-1", scopes=[]))

    assert now - 0.001 < claims.claims["iat"] <= now  # 12:00:00.999 at 999,600 us, not 12:00:01
    assert claims.expires_at == int(claims.claims["iat"]) + 1800


async def test_issued_token_writes_scopes_as_a_list() -> None:
    token = issue_token(CONFIG, sub="user-1", scopes=("agent:read",))

    payload = jwt.decode(token, SECRET, algorithms=["HS256"], issuer="starling-users")

    assert payload["scopes"] == ["agent:read"]


async def test_issue_token_refuses_to_take_over_claims_it_sets() -> None:
    with pytest.raises(TypeError, match="exp"):
        issue_token(CONFIG, sub="user-1", scopes=[], exp=0)


async def test_space_separated_scope_string_is_accepted() -> None:
    token = jwt.encode({**valid_payload(), "scopes": "agent:read reports:read"}, SECRET, algorithm="HS256")

    assert decode_token(CONFIG, token).scopes == frozenset({"agent:read", "reports:read"})


async def test_token_without_scopes_has_none() -> None:
    payload = valid_payload()
    del payload["scopes"]
    token = jwt.encode(payload, SECRET, algorithm="HS256")

    assert decode_token(CONFIG, token).scopes == frozenset()


@pytest.mark.parametrize("scopes", [[1, 2], {"agent": "read"}, 42], ids=["numbers", "object", "number"])
async def test_scopes_that_are_not_strings_are_refused(scopes: object) -> None:
    token = jwt.encode({**valid_payload(), "scopes": scopes}, SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(CONFIG, token)


async def test_expired_token_is_refused() -> None:
    token = issue_token(CONFIG, sub="user-1", scopes=[], expires_in=-10)

    with pytest.raises(InvalidToken, match="Token has expired"):
        decode_token(CONFIG, token)


async def test_leeway_accepts_a_token_just_expired() -> None:
    token = issue_token(CONFIG, sub="user-1", scopes=[], expires_in=-10)

    assert decode_token(replace(CONFIG, leeway=60), token).sub == "user-1"


async def test_token_signed_with_another_secret_is_refused() -> None:
    other = JWTConfig(signing_key="x" * 40, verifying_key="x" * 40, issuer="starling-users")
    token = issue_token(other, sub="user-1", scopes=[])

    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(CONFIG, token)


async def test_token_from_another_issuer_is_refused() -> None:
    token = issue_token(replace(CONFIG, issuer="someone-else"), sub="user-1", scopes=[])

    with pytest.raises(InvalidToken, match="Invalid token issuer"):
        decode_token(CONFIG, token)


@pytest.mark.parametrize("claim", ["exp", "iat", "iss", "sub"])
async def test_token_missing_a_required_claim_is_refused(claim: str) -> None:
    payload = valid_payload()
    del payload[claim]
    token = jwt.encode(payload, SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken, match=claim):
        decode_token(CONFIG, token)


# Signed by the issuer, so only a leaked key or an issuer's bug makes them; refused all the same, not a
# 500: a time that is no number (`float()` of -10**400 overflowed in every service that checks
# revocations), or a subject no service can store as an owner (PostgreSQL refuses NUL, over 255 chars).
ODD_CLAIMS = {
    "iat-beyond-a-float": ("iat", lambda now: -(10**400)),
    "iat-as-text": ("iat", str),
    "iat-as-boolean": ("iat", lambda now: True),
    "exp-as-text": ("exp", lambda now: str(now + 60)),
    "exp-beyond-a-float": ("exp", lambda now: 10**400),
    "sub-empty": ("sub", lambda now: ""),
    "sub-with-nul": ("sub", lambda now: "user-1\x00"),
    "sub-unpaired-surrogate": ("sub", lambda now: "\ud800"),
    "sub-too-long": ("sub", lambda now: "u" * 256),
}


@pytest.mark.parametrize(("claim", "make"), ODD_CLAIMS.values(), ids=ODD_CLAIMS.keys())
async def test_a_signed_token_with_an_odd_claim_is_refused(claim: str, make: Callable[[int], object]) -> None:
    payload = valid_payload()
    token = jwt.encode({**payload, claim: make(payload["iat"])}, SECRET, algorithm="HS256")

    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(CONFIG, token)


async def test_unsigned_alg_none_token_is_refused() -> None:
    header = b64url(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    token = f"{header}.{b64url(json.dumps(valid_payload()).encode())}."

    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(CONFIG, token)


async def test_token_in_another_algorithm_is_refused() -> None:
    token = jwt.encode(valid_payload(), SECRET, algorithm="HS512")

    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(CONFIG, token)


@pytest.mark.parametrize("token", ["", "garbage", "a.b.c"])
async def test_malformed_token_is_refused(token: str) -> None:
    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(CONFIG, token)


async def test_eddsa_token_signed_with_private_key_verifies_with_public_key() -> None:
    private, public = ed25519_pems()
    signer = JWTConfig(signing_key=private, verifying_key=public, issuer="starling-users", algorithm="EdDSA")
    verifier = replace(signer, signing_key="")

    claims = decode_token(verifier, issue_token(signer, sub="user-1", scopes=["agent:read"]))

    assert claims.sub == "user-1"


async def test_hs256_token_keyed_with_the_public_key_is_refused_by_an_eddsa_verifier() -> None:
    # The classic algorithm confusion: a verifier that let the token pick HS256 would check the
    # HMAC with its public key, which anyone can do.
    _, public = ed25519_pems()
    verifier = JWTConfig(signing_key="", verifying_key=public, issuer="starling-users", algorithm="EdDSA")
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{b64url(json.dumps(valid_payload()).encode())}"
    signature = hmac.new(public.encode(), signing_input.encode(), hashlib.sha256).digest()

    with pytest.raises(InvalidToken, match="Invalid token"):
        decode_token(verifier, f"{signing_input}.{b64url(signature)}")


async def test_verify_only_config_cannot_issue_tokens() -> None:
    _, public = ed25519_pems()
    verifier = JWTConfig(signing_key="", verifying_key=public, issuer="starling-users", algorithm="EdDSA")

    with pytest.raises(ValueError, match="no signing key"):
        issue_token(verifier, sub="user-1", scopes=[])


async def test_config_from_default_settings_uses_the_shared_secret() -> None:
    settings = ServiceSettings()

    config = JWTConfig.from_settings(settings)

    assert config.signing_key == config.verifying_key == settings.jwt_secret.get_secret_value()
    assert (config.issuer, config.algorithm) == ("starling-users", "HS256")


async def test_config_from_asymmetric_settings_uses_the_key_pair() -> None:
    private, public = ed25519_pems()
    settings = ServiceSettings(jwt_algorithm="EdDSA", jwt_private_key=private, jwt_public_key=public)

    config = JWTConfig.from_settings(settings)

    assert (config.signing_key, config.verifying_key, config.algorithm) == (private, public, "EdDSA")


async def test_config_from_asymmetric_settings_without_a_public_key_is_refused() -> None:
    private, _ = ed25519_pems()
    settings = ServiceSettings(jwt_algorithm="EdDSA", jwt_private_key=private)

    with pytest.raises(ValueError, match="STARLING_JWT_PUBLIC_KEY"):
        JWTConfig.from_settings(settings)


async def test_config_repr_hides_the_keys() -> None:
    assert SECRET not in repr(CONFIG)


@pytest.mark.parametrize(
    ("algorithm", "key", "message"),
    [
        ("none", "", "unsigned"),
        ("XS999", SECRET, "Unsupported"),
        ("HS256", "short", "verifying key"),
        ("EdDSA", "not a pem", "verifying key"),
    ],
    ids=["alg-none", "unknown-algorithm", "short-secret", "bad-public-key"],
)
async def test_config_refuses_a_bad_algorithm_or_key(algorithm: str, key: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JWTConfig(signing_key=key, verifying_key=key, issuer="starling-users", algorithm=algorithm)
