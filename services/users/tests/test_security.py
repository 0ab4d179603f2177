"""The security review's findings, over HTTP: each test failed against the service as it was, and holds now.

1. A demoted, deleted or re-passworded user's earlier token kept its powers; "is admin" came from the
   token's scopes alone. Now every request is checked against the caller's row and token version.
8. Unicode spellings of one address made separate accounts.
9. A NUL in a token's subject was a 500 on PostgreSQL, a deleted user's token a 404 on /users/me; user data
   was cacheable; the only administrator could demote or delete themself.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from starling_testkit import FrozenClock
from starling_testkit.tokens import ADMIN_SUB, DEFAULT_SUB, TokenFactory

from .helpers import PASSWORD, bearer, login, register, sign_in

REVOKED = {"detail": "Token has been revoked: log in again"}
INVALID = {"detail": "Invalid token"}
INVALID_REFRESH = {"detail": "Invalid refresh token"}


async def promote(admin_client: httpx.AsyncClient, user_id: str, role: str = "admin") -> None:
    response = await admin_client.patch(f"/users/{user_id}", json={"role": role})
    assert response.status_code == 200, response.text


def assert_revoked(response: httpx.Response) -> None:
    assert (response.status_code, response.json()) == (401, REVOKED)
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- 1. revocation ----------------------------------------------------------------------------------


async def test_a_demoted_admins_earlier_token_is_refused_at_once(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ada = await register(client)
    bo = await register(client, email="bo@example.com", name="Bo")
    await promote(admin_client, ada["id"])
    token = await login(client)
    assert (await client.get("/users", headers=bearer(token))).status_code == 200

    await promote(admin_client, ada["id"], role="user")

    assert_revoked(await client.get("/users", headers=bearer(token)))
    assert_revoked(await client.patch(f"/users/{ada['id']}", json={"role": "admin"}, headers=bearer(token)))
    assert_revoked(await client.delete(f"/users/{bo['id']}", headers=bearer(token)))
    assert (await admin_client.get(f"/users/{ada['id']}")).json()["role"] == "user"
    assert (await admin_client.get(f"/users/{bo['id']}")).status_code == 200


async def test_a_promotion_ends_the_earlier_token_too_and_the_next_login_is_admin(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ada = await register(client)
    token = await login(client)
    await promote(admin_client, ada["id"])
    assert_revoked(await client.get("/users/me", headers=bearer(token)))
    assert (await client.get("/users", headers=bearer(await login(client)))).status_code == 200


async def test_a_deleted_users_token_is_refused_everywhere(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ada = await register(client)
    token = await login(client)
    assert (await admin_client.delete(f"/users/{ada['id']}")).status_code == 204
    assert_revoked(await client.get("/users/me", headers=bearer(token)))
    assert_revoked(await client.get(f"/users/{ada['id']}", headers=bearer(token)))
    assert_revoked(await client.patch(f"/users/{ada['id']}", json={"name": "Ghost"}, headers=bearer(token)))
    assert_revoked(await client.post("/auth/logout", headers=bearer(token)))


async def test_a_password_change_ends_every_earlier_token(client: httpx.AsyncClient) -> None:
    ada = await register(client)
    first, second = await sign_in(client), await sign_in(client)
    body = {"password": "a new password", "current_password": PASSWORD}
    changed = await client.patch(f"/users/{ada['id']}", json=body, headers=bearer(first["access_token"]))
    assert changed.status_code == 200
    for earlier in (first, second):
        assert_revoked(await client.get("/users/me", headers=bearer(earlier["access_token"])))
        refreshed = await client.post("/auth/token", json={"refresh_token": earlier["refresh_token"]})
        assert (refreshed.status_code, refreshed.json()) == (401, INVALID_REFRESH)
    assert await login(client, password="a new password")


@pytest.mark.parametrize("current", [None, "a wrong guess"], ids=["missing", "wrong"])
async def test_changing_ones_own_password_needs_the_current_one(
    client: httpx.AsyncClient, current: str | None
) -> None:
    # A stolen access token lives 15 minutes; setting a password its thief knows would keep the account.
    ada = await register(client)
    token = await login(client)
    body = {"password": "the thief's password"} | ({"current_password": current} if current else {})

    refused = await client.patch(f"/users/{ada['id']}", json=body, headers=bearer(token))

    assert refused.status_code == 422
    assert [error["loc"] for error in refused.json()["detail"]] == [["body", "current_password"]]
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200  # nothing changed
    assert await login(client)


async def test_the_current_password_lets_a_user_change_it(client: httpx.AsyncClient) -> None:
    ada = await register(client)
    body = {"password": "a new password", "current_password": PASSWORD}
    changed = await client.patch(f"/users/{ada['id']}", json=body, headers=bearer(await login(client)))
    assert changed.status_code == 200
    assert await login(client, password="a new password")


async def test_an_admin_setting_a_password_ends_the_users_tokens(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ada = await register(client)
    token = await login(client)
    assert (
        await admin_client.patch(f"/users/{ada['id']}", json={"password": "reset by admin"})
    ).status_code == 200
    assert_revoked(await client.get("/users/me", headers=bearer(token)))


async def test_a_name_or_email_change_keeps_the_token(client: httpx.AsyncClient) -> None:
    ada = await register(client)
    token = await login(client)
    body = {"name": "Ada L.", "email": "lovelace@example.com"}
    assert (await client.patch(f"/users/{ada['id']}", json=body, headers=bearer(token))).status_code == 200
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200


async def test_is_admin_comes_from_the_stored_role_not_the_tokens_scopes(
    auth_client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    # A validly signed token of a stored plain user that claims users:admin.
    claimed = bearer(token_factory(DEFAULT_SUB, ["users:admin"], ver=0))
    listed = await auth_client.get("/users", headers=claimed)
    assert (listed.status_code, listed.json()) == (403, {"detail": "Only an administrator can list users"})
    promoted = await auth_client.patch(f"/users/{DEFAULT_SUB}", json={"role": "admin"}, headers=claimed)
    assert promoted.status_code == 403
    assert (await auth_client.get(f"/users/{ADMIN_SUB}", headers=claimed)).status_code == 404


@pytest.mark.parametrize("ver", [None, 1, -1, "0", True], ids=["missing", "newer", "older", "string", "bool"])
async def test_a_token_whose_version_is_not_the_users_is_refused(
    auth_client: httpx.AsyncClient, token_factory: TokenFactory, ver: object
) -> None:
    claims: dict[str, Any] = {} if ver is None else {"ver": ver}
    assert_revoked(await auth_client.get("/users/me", headers=bearer(token_factory(DEFAULT_SUB, **claims))))


# --- refresh tokens and logout -----------------------------------------------------------------------


async def test_a_refresh_token_is_exchanged_for_a_new_pair_as_json_or_the_oauth2_form(
    client: httpx.AsyncClient,
) -> None:
    await register(client)
    first = await sign_in(client)
    by_json = await client.post("/auth/token", json={"refresh_token": first["refresh_token"]})
    assert by_json.status_code == 200
    second = by_json.json()
    assert set(second) == {"access_token", "token_type", "expires_in", "scope", "refresh_token"}
    assert by_json.headers["cache-control"] == "no-store"
    by_form = await client.post(
        "/auth/token", data={"grant_type": "refresh_token", "refresh_token": second["refresh_token"]}
    )
    assert by_form.status_code == 200
    third = by_form.json()
    assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
    assert (await client.get("/users/me", headers=bearer(third["access_token"]))).status_code == 200


async def test_a_reused_refresh_token_revokes_its_whole_family(client: httpx.AsyncClient) -> None:
    await register(client)
    stolen, other_device = await sign_in(client), await sign_in(client)
    rotated = await client.post("/auth/token", json={"refresh_token": stolen["refresh_token"]})
    successor = rotated.json()["refresh_token"]

    reused = await client.post("/auth/token", json={"refresh_token": stolen["refresh_token"]})
    assert (reused.status_code, reused.json()) == (401, INVALID_REFRESH)
    assert reused.headers["www-authenticate"] == "Bearer"
    after = await client.post("/auth/token", json={"refresh_token": successor})
    assert (after.status_code, after.json()) == (401, INVALID_REFRESH)
    # Another login's family is not the thief's.
    elsewhere = await client.post("/auth/token", json={"refresh_token": other_device["refresh_token"]})
    assert elsewhere.status_code == 200


async def test_a_refresh_token_expires(client: httpx.AsyncClient, frozen_clock: FrozenClock) -> None:
    await register(client)
    signed_in = await sign_in(client)
    frozen_clock.tick(14 * 24 * 3600 + 1)
    expired = await client.post("/auth/token", json={"refresh_token": signed_in["refresh_token"]})
    assert (expired.status_code, expired.json()) == (401, INVALID_REFRESH)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"refresh_token": "never-issued"}, 401),
        ({"refresh_token": ""}, 422),
        ({"grant_type": "refresh_token"}, 422),
        ({"refresh_token": "x" * 10_000}, 422),
    ],
    ids=["unknown", "empty", "missing", "too-long"],
)
async def test_a_bad_refresh_request_is_refused(
    client: httpx.AsyncClient, body: dict[str, str], status: int
) -> None:
    assert (await client.post("/auth/token", json=body)).status_code == status
    assert (
        await client.post("/auth/token", data={"grant_type": "refresh_token", **body})
    ).status_code == status


async def test_logout_ends_every_token_of_the_caller(client: httpx.AsyncClient) -> None:
    await register(client)
    first, second = await sign_in(client), await sign_in(client)
    response = await client.post("/auth/logout", headers=bearer(first["access_token"]))
    assert (response.status_code, response.content) == (204, b"")
    for signed_in in (first, second):
        assert_revoked(await client.get("/users/me", headers=bearer(signed_in["access_token"])))
        refreshed = await client.post("/auth/token", json={"refresh_token": signed_in["refresh_token"]})
        assert refreshed.status_code == 401
    assert await login(client)


async def test_logout_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/logout")
    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]


# --- 8. one address, one account ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("jos\N{LATIN SMALL LETTER E WITH ACUTE}@example.com", "jose\N{COMBINING ACUTE ACCENT}@example.com"),
        ("ada@b\N{LATIN SMALL LETTER U WITH DIAERESIS}cher.de", "ada@xn--bcher-kva.de"),
        ("ada@xn--bcher-kva.de", "ADA@B\N{LATIN CAPITAL LETTER U WITH DIAERESIS}CHER.DE"),
        ("root@example.com", "\uff52\uff4f\uff4f\uff54@example.com"),
        ("root@example.com", "root@\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"),
    ],
    ids=["nfc-nfd", "idn-punycode", "punycode-idn-upper", "fullwidth-local", "fullwidth-domain"],
)
async def test_another_unicode_spelling_of_a_taken_email_is_409(
    client: httpx.AsyncClient, first: str, second: str
) -> None:
    await register(client, email=first)
    response = await client.post("/users", json={"name": "Again", "email": second, "password": PASSWORD})
    assert (response.status_code, response.json()) == (
        409,
        {"detail": "A user with this email already exists"},
    )
    assert await login(client, email=second)  # and it signs in as the one account


@pytest.mark.parametrize(
    "email",
    [
        "ro\N{ZERO WIDTH SPACE}ot@example.com",
        "root\N{ZERO WIDTH JOINER}@example.com",
        "root@exa\N{SOFT HYPHEN}mple.com",
        "\N{ZERO WIDTH NO-BREAK SPACE}root@example.com",
    ],
    ids=["zero-width-space", "zero-width-joiner", "soft-hyphen", "byte-order-mark"],
)
async def test_an_email_with_an_invisible_character_is_422(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/users", json={"name": "Root", "email": email, "password": PASSWORD})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "email"]
    assert "not a valid email address" in error["msg"]


async def test_changing_to_another_spelling_of_a_taken_email_is_409(client: httpx.AsyncClient) -> None:
    await register(client, email="root@example.com")
    ada = await register(client)
    response = await client.patch(
        f"/users/{ada['id']}",
        json={"email": "\uff52\uff4f\uff4f\uff54@example.com"},
        headers=bearer(await login(client)),
    )
    assert response.status_code == 409


# --- 9. subjects the database cannot hold, deleted users, caching, the last administrator ------------


# Core refuses a subject no service can store (`Invalid token`); one no user id can be, this service.
@pytest.mark.parametrize(
    ("sub", "detail"),
    [("ab\x00cd", INVALID), ("\ud800", INVALID), ("9" * 10_000, INVALID), ("9" * 37, REVOKED)],
    ids=["nul", "surrogate", "long", "longer-than-an-id"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/users/me"),
        ("GET", "/users/x"),
        ("PATCH", "/users/x"),
        ("DELETE", "/users/x"),
        ("POST", "/auth/logout"),
    ],
)
async def test_a_signed_token_whose_subject_no_user_can_have_is_401(
    client: httpx.AsyncClient,
    token_factory: TokenFactory,
    sub: str,
    detail: dict[str, str],
    method: str,
    path: str,
) -> None:
    response = await client.request(
        method, path, json={"name": "X"}, headers=bearer(token_factory(sub, ver=0))
    )
    assert (response.status_code, response.json()) == (401, detail)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/users/me", f"/users/{DEFAULT_SUB}"])
async def test_a_users_data_is_never_stored_by_a_cache(auth_client: httpx.AsyncClient, path: str) -> None:
    response = await auth_client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_the_user_list_is_never_stored_by_a_cache(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/users")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"


async def test_the_only_admin_can_neither_demote_nor_delete_themself(admin_client: httpx.AsyncClient) -> None:
    demoted = await admin_client.patch(f"/users/{ADMIN_SUB}", json={"role": "user"})
    deleted = await admin_client.delete(f"/users/{ADMIN_SUB}")
    for response in (demoted, deleted):
        assert response.status_code == 409
        assert "only administrator" in response.json()["detail"]
    me = await admin_client.get("/users/me")
    assert (me.status_code, me.json()["role"]) == (200, "admin")


async def test_one_of_two_admins_can_step_down(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    ada = await register(client)
    await promote(admin_client, ada["id"])
    response = await admin_client.patch(f"/users/{ADMIN_SUB}", json={"role": "user"})
    assert (response.status_code, response.json()["role"]) == (200, "user")
    ada_token = await login(client)
    assert (await client.delete(f"/users/{ada['id']}", headers=bearer(ada_token))).status_code == 409
