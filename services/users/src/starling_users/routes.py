"""Thin endpoints: parse the input, call `UsersService`, shape the answer."""

from __future__ import annotations

from typing import Any, TypedDict

from pydantic import BaseModel
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from starling_core.auth import Scopes, current_user
from starling_core.operations import operation, route
from starling_core.pagination import Page, PageParams
from starling_core.validation import read_json, validate
from starling_users.schemas import (
    LoginForm,
    LoginIn,
    RefreshForm,
    RefreshIn,
    TokenForm,
    TokenOut,
    TokenRequest,
    UserCreate,
    UserOut,
    UserUpdate,
)
from starling_users.service import SignedIn, UsersService
from starling_users.tokens import AccessTokens, Credentials

USERS_ADMIN = "users:admin"
SCOPES = Scopes(user=(), admin=(USERS_ADMIN,))

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
# A user's data is for its caller only: no cache, shared or private, keeps a copy.
_NO_STORE = {"Cache-Control": "no-store"}
_NO_STORE_DOC = {200: {"Cache-Control": "no-store"}}


class UsersState(TypedDict):
    """What the routes use, built once in the app's lifespan: each request's `request.state`."""

    users: UsersService
    tokens: AccessTokens


# Core's helpers take a connection of any state: `HTTPConnection[Any]` (and `Request[Any]`) pass it on.
def _credentials(request: HTTPConnection[Any]) -> Credentials:
    """What the verified token claims; the service checks it against the caller's row."""
    return Credentials.from_claims(current_user(request).claims)


def _no_store(answer: BaseModel) -> Response:
    return Response(answer.model_dump_json(), headers=_NO_STORE, media_type="application/json")


@operation(body=UserCreate, response=UserOut, status_code=201, errors=[409, 422], tags=["users"])
async def register(request: Request[UsersState], body: UserCreate) -> UserOut:
    """Register a user."""
    user = await request.state["users"].register(body)
    return UserOut.model_validate(user)


@operation(
    accepts={"application/json": TokenRequest, **dict.fromkeys(_FORMS, TokenForm)},
    response=TokenOut,
    errors=[401],
    tags=["auth"],
)
async def token(request: Request[UsersState]) -> JSONResponse:
    """Log in (JSON {"email", "password"} or the OAuth2 password form), or exchange a refresh token."""
    grant = await _grant(request)
    users = request.state["users"]
    signed_in: SignedIn
    if isinstance(grant, RefreshIn | RefreshForm):
        signed_in = await users.refresh(grant.refresh_token)
    elif isinstance(grant, LoginForm):
        signed_in = await users.login(grant.username, grant.password)
    else:
        signed_in = await users.login(grant.email, grant.password)
    issued = request.state["tokens"].issue(signed_in.user)
    answer = TokenOut(
        access_token=issued.token,
        expires_in=issued.expires_in,
        scope=" ".join(issued.scopes),
        refresh_token=signed_in.refresh_token,
    )
    # RFC 6749 5.1: a response carrying a token is never cached.
    return JSONResponse(answer.model_dump(), headers={**_NO_STORE, "Pragma": "no-cache"})


async def _grant(request: Request[Any]) -> LoginIn | LoginForm | RefreshIn | RefreshForm:
    """A login's email and password, or a refresh token: from the OAuth2 form or from JSON."""
    if request.headers.get("content-type", "").startswith(_FORMS):
        async with request.form() as form:
            fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
        if fields.get("grant_type") == "refresh_token":
            return validate(RefreshForm, fields, location="body")
        return validate(LoginForm, fields, location="body")
    data = await read_json(request)
    if isinstance(data, dict) and ("refresh_token" in data or data.get("grant_type") == "refresh_token"):
        return validate(RefreshIn, data, location="body")
    return validate(LoginIn, data, location="body")


@operation(status_code=204, authenticated=True, tags=["auth"])
async def logout(request: Request[UsersState]) -> None:
    """End every token of the caller: its access tokens and its refresh tokens."""
    await request.state["users"].logout(_credentials(request))


@operation(response=UserOut, authenticated=True, response_headers=_NO_STORE_DOC, tags=["users"])
async def me(request: Request[UsersState]) -> Response:
    """The caller's own user."""
    user = await request.state["users"].me(_credentials(request))
    return _no_store(UserOut.model_validate(user))


@operation(response=UserOut, authenticated=True, errors=[404], response_headers=_NO_STORE_DOC, tags=["users"])
async def get_user(request: Request[UsersState]) -> Response:
    """One user: the caller itself, or anyone for an administrator."""
    user = await request.state["users"].get(_credentials(request), request.path_params["user_id"])
    return _no_store(UserOut.model_validate(user))


@operation(
    query=PageParams,
    response=Page[UserOut],
    scopes=[USERS_ADMIN],
    errors=[422],
    response_headers=_NO_STORE_DOC,
    tags=["users"],
)
async def list_users(request: Request[UsersState], query: PageParams) -> Response:
    """Every user, oldest first, a page at a time: for an administrator."""
    users, next_cursor = await request.state["users"].list_page(
        _credentials(request), limit=query.limit, cursor=query.cursor
    )
    page = Page[UserOut](items=[UserOut.model_validate(user) for user in users], next_cursor=next_cursor)
    return _no_store(page)


@operation(body=UserUpdate, response=UserOut, authenticated=True, errors=[403, 404, 409], tags=["users"])
async def update_user(request: Request[UsersState], body: UserUpdate) -> UserOut:
    """Change a user's name, email or password; its role too, for an administrator."""
    user = await request.state["users"].update(_credentials(request), request.path_params["user_id"], body)
    return UserOut.model_validate(user)


@operation(status_code=204, authenticated=True, errors=[404, 409], tags=["users"])
async def delete_user(request: Request[UsersState]) -> None:
    """Delete a user: the caller itself, or anyone for an administrator."""
    await request.state["users"].delete(_credentials(request), request.path_params["user_id"])


routes = [
    route("/users", GET=list_users, POST=register),
    Route("/auth/token", token, methods=["POST"]),
    Route("/auth/logout", logout, methods=["POST"]),
    Route("/users/me", me, methods=["GET"]),
    route("/users/{user_id}", GET=get_user, PATCH=update_user, DELETE=delete_user),
]
