"""Thin endpoints: parse the input, call `UsersService`, shape the answer."""

from __future__ import annotations

from typing import Any, TypedDict

from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection, Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.auth import Scopes, current_user
from starling_core.operations import operation, route
from starling_core.pagination import Page, PageParams
from starling_core.validation import read_json, validate
from starling_users.schemas import LoginForm, LoginIn, TokenOut, UserCreate, UserOut, UserUpdate
from starling_users.service import AccessTokens, Actor, UsersService

USERS_ADMIN = "users:admin"
SCOPES = Scopes(user=(), admin=(USERS_ADMIN,))

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


class UsersState(TypedDict):
    """What the routes use, built once in the app's lifespan: each request's `request.state`."""

    users: UsersService
    tokens: AccessTokens


# Core's helpers take a connection of any state: `HTTPConnection[Any]` (and `Request[Any]`) pass it on.
def _actor(request: HTTPConnection[Any]) -> Actor:
    user = current_user(request)
    return Actor(user_id=user.sub, is_admin=USERS_ADMIN in user.scopes)


@operation(body=UserCreate, response=UserOut, status_code=201, errors=[409, 422], tags=["users"])
async def register(request: Request[UsersState], body: UserCreate) -> UserOut:
    """Register a user."""
    user = await request.state["users"].register(body)
    return UserOut.model_validate(user)


@operation(
    accepts={"application/json": LoginIn, **dict.fromkeys(_FORMS, LoginForm)},
    response=TokenOut,
    errors=[401],
    tags=["auth"],
)
async def token(request: Request[UsersState]) -> JSONResponse:
    """Log in: a JSON {"email", "password"} or the OAuth2 password form (username, password)."""
    user = await request.state["users"].authenticate(*await _credentials(request))
    issued = request.state["tokens"].issue(user)
    answer = TokenOut(access_token=issued.token, expires_in=issued.expires_in, scope=" ".join(issued.scopes))
    # RFC 6749 5.1: a response carrying a token is never cached.
    return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _credentials(request: Request[Any]) -> tuple[str, str]:
    """The email and password of a login, from the OAuth2 form or from JSON."""
    if request.headers.get("content-type", "").startswith(_FORMS):
        async with request.form() as form:
            fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
        login = validate(LoginForm, fields, location="body")
        return login.username, login.password
    credentials = validate(LoginIn, await read_json(request), location="body")
    return credentials.email, credentials.password


@operation(response=UserOut, authenticated=True, errors=[404], tags=["users"])
async def me(request: Request[UsersState]) -> UserOut:
    """The caller's own user."""
    actor = _actor(request)
    user = await request.state["users"].get(actor, actor.user_id)
    return UserOut.model_validate(user)


@operation(response=UserOut, authenticated=True, errors=[404], tags=["users"])
async def get_user(request: Request[UsersState]) -> UserOut:
    """One user: the caller itself, or anyone for users:admin."""
    user = await request.state["users"].get(_actor(request), request.path_params["user_id"])
    return UserOut.model_validate(user)


@operation(query=PageParams, response=Page[UserOut], scopes=[USERS_ADMIN], errors=[422], tags=["users"])
async def list_users(request: Request[UsersState], query: PageParams) -> Page[UserOut]:
    """Every user, oldest first, a page at a time."""
    users, next_cursor = await request.state["users"].list_page(limit=query.limit, cursor=query.cursor)
    return Page[UserOut](items=[UserOut.model_validate(user) for user in users], next_cursor=next_cursor)


@operation(body=UserUpdate, response=UserOut, authenticated=True, errors=[403, 404, 409], tags=["users"])
async def update_user(request: Request[UsersState], body: UserUpdate) -> UserOut:
    """Change a user's name, email or password; its role too, for users:admin."""
    user = await request.state["users"].update(_actor(request), request.path_params["user_id"], body)
    return UserOut.model_validate(user)


@operation(status_code=204, authenticated=True, errors=[404], tags=["users"])
async def delete_user(request: Request[UsersState]) -> None:
    """Delete a user: the caller itself, or anyone for users:admin."""
    await request.state["users"].delete(_actor(request), request.path_params["user_id"])


routes = [
    route("/users", GET=list_users, POST=register),
    Route("/auth/token", token, methods=["POST"]),
    Route("/users/me", me, methods=["GET"]),
    route("/users/{user_id}", GET=get_user, PATCH=update_user, DELETE=delete_user),
]
