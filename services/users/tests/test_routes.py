"""Every route of the users service, through HTTP."""

from __future__ import annotations

import httpx
import pytest

from starling_core.tokens import JWTConfig, decode_token
from starling_testkit import BoundDatabase
from starling_testkit.tokens import ADMIN_SUB, TokenFactory
from starling_users.app import create_app
from starling_users.routes import USERS_ADMIN
from starling_users.settings import UsersSettings

from .helpers import ADMIN_SCOPES, PASSWORD, USER_SCOPES, bearer, login, register, started

# --- POST /users ----------------------------------------------------------------------------------


async def test_register_answers_201_with_the_user_and_no_hash(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/users", json={"name": "Ada", "email": "Ada@Example.com", "password": PASSWORD}
    )
    assert response.status_code == 201
    user = response.json()
    assert set(user) == {"id", "name", "email", "role", "created_at"}
    assert user["name"] == "Ada"
    assert user["email"] == "Ada@Example.com"
    assert user["role"] == "user"
    assert user["created_at"].endswith("Z") or user["created_at"].endswith("+00:00")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "email": "a@example.com", "password": PASSWORD}, "name"),
        ({"name": "   ", "email": "a@example.com", "password": PASSWORD}, "name"),
        ({"name": "Ada", "email": "not-an-email", "password": PASSWORD}, "email"),
        ({"name": "Ada", "email": "a@b", "password": PASSWORD}, "email"),
        ({"name": "Ada", "email": "a@example.com", "password": "short"}, "password"),
        ({"email": "a@example.com", "password": PASSWORD}, "name"),
    ],
)
async def test_register_refuses_invalid_input_with_422(
    client: httpx.AsyncClient, body: dict[str, str], field: str
) -> None:
    response = await client.post("/users", json=body)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["body", field]]


async def test_register_refuses_a_taken_email_in_any_case_with_409(client: httpx.AsyncClient) -> None:
    await register(client, email="ada@example.com")
    response = await client.post(
        "/users", json={"name": "Other", "email": "ADA@example.COM", "password": PASSWORD}
    )
    assert response.status_code == 409
    assert "already exists" in response.json()["detail"]


async def test_register_is_rate_limited(client: httpx.AsyncClient) -> None:
    response = await client.post("/users", json={})
    assert response.headers["ratelimit-limit"] == "60"


# --- POST /auth/token -----------------------------------------------------------------------------


async def test_login_with_json_issues_a_bearer_token_with_the_role_scopes(client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post("/auth/token", json={"email": "ADA@example.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == " ".join(USER_SCOPES)
    assert body["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    me = await client.get("/users/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200


async def test_login_with_the_oauth2_password_form(client: httpx.AsyncClient) -> None:
    await register(client)
    response = await client.post(
        "/auth/token", data={"grant_type": "password", "username": "ada@example.com", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.json()["access_token"]


@pytest.mark.parametrize(
    ("email", "password"), [("ada@example.com", "wrong password"), ("nobody@example.com", PASSWORD)]
)
async def test_login_refuses_a_wrong_password_and_an_unknown_email_alike(
    client: httpx.AsyncClient, email: str, password: str
) -> None:
    await register(client)
    response = await client.post("/auth/token", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid email or password"}
    assert response.headers["www-authenticate"] == "Bearer"


async def test_login_form_without_password_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/auth/token", data={"username": "ada@example.com"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


async def test_login_with_malformed_json_is_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/auth/token", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400


async def test_admin_login_gets_every_scope(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    user = await register(client)
    promoted = await admin_client.patch(f"/users/{user['id']}", json={"role": "admin"})
    assert promoted.status_code == 200
    response = await client.post("/auth/token", json={"email": "ada@example.com", "password": PASSWORD})
    assert set(response.json()["scope"].split()) == set(ADMIN_SCOPES)


async def test_a_scope_granted_in_the_role_scopes_setting_is_in_the_issued_token(
    app_settings: UsersSettings, app_database: BoundDatabase
) -> None:
    grants = {"user": ["inventory:read"], "admin": ["inventory:read", "inventory:admin", USERS_ADMIN]}
    settings = UsersSettings(**(app_settings.model_dump() | {"role_scopes": grants}))
    async with started(create_app(settings, database=app_database)) as client:
        await register(client)
        response = await client.post("/auth/token", json={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 200
    assert response.json()["scope"] == "inventory:read"
    claims = decode_token(JWTConfig.from_settings(settings), response.json()["access_token"])
    assert claims.scopes == frozenset({"inventory:read"})


# --- GET /users/me --------------------------------------------------------------------------------


async def test_me_returns_the_callers_user(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.get("/users/me", headers=bearer(await login(client)))
    assert response.status_code == 200
    assert response.json() == user


async def test_me_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me")
    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_me_with_a_bad_token_is_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/users/me", headers=bearer("not.a.token"))
    assert response.status_code == 401


async def test_me_after_the_user_was_deleted_is_401(client: httpx.AsyncClient) -> None:
    user = await register(client)
    token = await login(client)
    assert (await client.delete(f"/users/{user['id']}", headers=bearer(token))).status_code == 204
    response = await client.get("/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has been revoked: log in again"}
    assert response.headers["www-authenticate"].startswith("Bearer")


# --- GET /users/{id} ------------------------------------------------------------------------------


async def test_get_user_self(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.get(f"/users/{user['id']}", headers=bearer(await login(client)))
    assert response.status_code == 200
    assert response.json() == user


async def test_get_user_as_admin(client: httpx.AsyncClient, admin_client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await admin_client.get(f"/users/{user['id']}")
    assert response.status_code == 200
    assert response.json()["id"] == user["id"]


async def test_get_someone_elses_user_is_404_not_403(
    client: httpx.AsyncClient, auth_client: httpx.AsyncClient
) -> None:
    user = await register(client)
    response = await auth_client.get(f"/users/{user['id']}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"User {user['id']} not found"}


async def test_get_unknown_user_as_admin_is_404(admin_client: httpx.AsyncClient) -> None:
    response = await admin_client.get("/users/missing")
    assert response.status_code == 404
    assert response.json() == {"detail": "User missing not found"}


async def test_get_user_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users/anything")).status_code == 401


# --- GET /users -----------------------------------------------------------------------------------


async def test_list_pages_through_every_user_in_creation_order(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient
) -> None:
    # The administrator's own row comes first: it was stored before these.
    created = [{"id": ADMIN_SUB}] + [await register(client, email=f"user{n}@example.com") for n in range(5)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(3):
        params = {"limit": "2"} | ({"cursor": cursor} if cursor else {})
        response = await admin_client.get("/users", params=params)
        assert response.status_code == 200
        page = response.json()
        seen += [user["id"] for user in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [user["id"] for user in created]
    assert cursor is None


async def test_list_without_users_admin_is_403(auth_client: httpx.AsyncClient) -> None:
    response = await auth_client.get("/users")
    assert response.status_code == 403
    assert USERS_ADMIN in response.json()["detail"]


async def test_list_without_a_token_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/users")).status_code == 401


@pytest.mark.parametrize("params", [{"cursor": "not a cursor"}, {"cursor": "e30"}, {"limit": "0"}])
async def test_list_with_a_bad_cursor_or_limit_is_422(
    admin_client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await admin_client.get("/users", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


# --- PATCH /users/{id} ----------------------------------------------------------------------------


async def test_update_self_changes_name_email_and_password(client: httpx.AsyncClient) -> None:
    user = await register(client)
    token = await login(client)
    response = await client.patch(
        f"/users/{user['id']}",
        json={
            "name": "Ada L.",
            "email": "lovelace@example.com",
            "password": "a new password",
            "current_password": PASSWORD,
        },
        headers=bearer(token),
    )
    assert response.status_code == 200
    assert response.json() | {"name": "Ada L.", "email": "lovelace@example.com"} == response.json()
    assert await login(client, email="lovelace@example.com", password="a new password")
    stale = await client.post("/auth/token", json={"email": "lovelace@example.com", "password": PASSWORD})
    assert stale.status_code == 401


async def test_update_role_by_a_non_admin_is_403(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.patch(
        f"/users/{user['id']}", json={"role": "admin"}, headers=bearer(await login(client))
    )
    assert response.status_code == 403
    assert "role" in response.json()["detail"]


async def test_update_role_by_an_admin(client: httpx.AsyncClient, admin_client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await admin_client.patch(f"/users/{user['id']}", json={"role": "admin"})
    assert response.status_code == 200
    assert response.json()["role"] == "admin"


async def test_update_to_a_taken_email_is_409(client: httpx.AsyncClient) -> None:
    await register(client, email="taken@example.com")
    user = await register(client)
    response = await client.patch(
        f"/users/{user['id']}", json={"email": "TAKEN@example.com"}, headers=bearer(await login(client))
    )
    assert response.status_code == 409


@pytest.mark.parametrize(
    "body", [{"name": ""}, {"email": "nope"}, {"password": "short"}, {"role": "king"}, {"colour": "red"}]
)
async def test_update_with_invalid_fields_is_422(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    user = await register(client)
    response = await admin_client.patch(f"/users/{user['id']}", json=body)
    assert response.status_code == 422


async def test_update_someone_else_is_404(client: httpx.AsyncClient, auth_client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await auth_client.patch(f"/users/{user['id']}", json={"name": "Mallory"})
    assert response.status_code == 404


async def test_update_unknown_user_as_admin_is_404(admin_client: httpx.AsyncClient) -> None:
    assert (await admin_client.patch("/users/missing", json={"name": "X"})).status_code == 404


# --- DELETE /users/{id} ---------------------------------------------------------------------------


async def test_delete_self_is_204_and_the_login_stops_working(client: httpx.AsyncClient) -> None:
    user = await register(client)
    response = await client.delete(f"/users/{user['id']}", headers=bearer(await login(client)))
    assert response.status_code == 204
    assert response.content == b""
    relogin = await client.post("/auth/token", json={"email": "ada@example.com", "password": PASSWORD})
    assert relogin.status_code == 401


async def test_delete_as_admin(client: httpx.AsyncClient, admin_client: httpx.AsyncClient) -> None:
    user = await register(client)
    assert (await admin_client.delete(f"/users/{user['id']}")).status_code == 204
    assert (await admin_client.get(f"/users/{user['id']}")).status_code == 404


async def test_delete_someone_else_is_404(client: httpx.AsyncClient, auth_client: httpx.AsyncClient) -> None:
    user = await register(client)
    assert (await auth_client.delete(f"/users/{user['id']}")).status_code == 404


async def test_delete_unknown_user_as_admin_is_404(admin_client: httpx.AsyncClient) -> None:
    assert (await admin_client.delete("/users/missing")).status_code == 404


# --- tokens from elsewhere, and the document ------------------------------------------------------


async def test_token_for_a_subject_without_a_row_is_401_on_me(
    client: httpx.AsyncClient, token_factory: TokenFactory
) -> None:
    response = await client.get("/users/me", headers=bearer(token_factory("ghost", ver=0)))
    assert response.status_code == 401


async def test_openapi_documents_every_users_route(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/users"]) == {"get", "post"}
    assert set(paths["/users/{user_id}"]) == {"get", "patch", "delete"}
    assert "post" in paths["/auth/token"]
    assert "get" in paths["/users/me"]


async def test_routes_for_any_valid_token_say_so_in_openapi(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path, method in [("/users/me", "get"), ("/users/{user_id}", "patch"), ("/users/{user_id}", "delete")]:
        assert paths[path][method]["security"] == [{"bearer": []}], (path, method)
        assert "401" in paths[path][method]["responses"]
    assert "security" not in paths["/users"]["post"]


async def test_an_anonymous_update_is_401_before_its_body_is_read(client: httpx.AsyncClient) -> None:
    response = await client.patch(
        "/users/someone", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]


async def test_openapi_shows_the_login_as_json_and_as_the_oauth2_form(client: httpx.AsyncClient) -> None:
    login_operation = (await client.get("/openapi.json")).json()["paths"]["/auth/token"]["post"]
    content = login_operation["requestBody"]["content"]
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]

    def choices(media_type: str) -> list[dict[str, str]]:
        reference = content[media_type]["schema"]["$ref"].rsplit("/", 1)[-1]
        listed: list[dict[str, str]] = schemas[reference]["anyOf"]
        return listed

    assert choices("application/json") == [
        {"$ref": "#/components/schemas/LoginIn"},
        {"$ref": "#/components/schemas/RefreshIn"},
    ]
    for form in ("application/x-www-form-urlencoded", "multipart/form-data"):
        assert choices(form) == [
            {"$ref": "#/components/schemas/LoginForm"},
            {"$ref": "#/components/schemas/RefreshForm"},
        ]
    assert {"200", "400", "401", "413", "422"} <= set(login_operation["responses"])


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")
    body = response.json()
    assert {key: body[key] for key in ("status", "service", "checks")} == {
        "status": "healthy",
        "service": "users",
        "checks": {"database": "ok"},
    }
    # the outbox of user.changed and user.deleted, waiting while no broker is configured
    assert body["details"]["events"]["broker"] == "unconfigured"
