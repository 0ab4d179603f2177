"""Thin endpoints: parse the input, call `UsersService`, shape the answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.auth import ROLE_SCOPES, USERS_ADMIN, current_user
from starling_core.errors import RequestValidationError
from starling_core.operations import operation, route
from starling_core.pagination import InvalidCursor, Page, PageParams
from starling_core.tokens import issue_token
from starling_core.validation import read_json, validate
from starling_users.errors import EmailTaken, InvalidCredentials, RoleChangeForbidden, UserNotFound
from starling_users.repository import DatabaseUserStores
from starling_users.schemas import LoginForm, LoginIn, TokenOut, UserCreate, UserOut, UserUpdate
from starling_users.service import Actor, UsersService

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


@asynccontextmanager
async def _service(request: Request) -> AsyncIterator[UsersService]:
    """The service, which opens its own sessions and transactions; its refusals become HTTP errors."""
    try:
        yield UsersService(DatabaseUserStores(request.app.state.database), request.app.state.passwords)
    except UserNotFound as exc:
        raise HTTPException(404, detail=str(exc)) from None
    except EmailTaken as exc:
        raise HTTPException(409, detail=str(exc)) from None
    except RoleChangeForbidden as exc:
        raise HTTPException(403, detail=str(exc)) from None
    except InvalidCredentials as exc:
        raise HTTPException(401, detail=str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    except InvalidCursor as exc:
        error = {"loc": ["query", "cursor"], "msg": str(exc), "type": "value_error"}
        raise RequestValidationError([error]) from None


def _actor(request: Request) -> Actor:
    user = current_user(request)
    return Actor(user_id=user.sub, is_admin=USERS_ADMIN in user.scopes)


@operation(body=UserCreate, response=UserOut, status_code=201, errors=[409, 422], tags=["users"])
async def register(request: Request, body: UserCreate) -> UserOut:
    """Register a user."""
    async with _service(request) as service:
        user = await service.register(body)
    return UserOut.model_validate(user)


@operation(
    accepts={"application/json": LoginIn, **dict.fromkeys(_FORMS, LoginForm)},
    response=TokenOut,
    errors=[401],
    tags=["auth"],
)
async def token(request: Request) -> JSONResponse:
    """Log in: a JSON {"email", "password"} or the OAuth2 password form (username, password)."""
    if request.headers.get("content-type", "").startswith(_FORMS):
        async with request.form() as form:
            fields = {key: value for key, value in form.items() if not isinstance(value, UploadFile)}
        login = validate(LoginForm, fields, location="body")
        email, password = login.username, login.password
    else:
        credentials = validate(LoginIn, await read_json(request), location="body")
        email, password = credentials.email, credentials.password
    async with _service(request) as service:
        user = await service.authenticate(email, password)
    settings = request.app.state.settings
    scopes = ROLE_SCOPES[user.role]
    answer = TokenOut(
        access_token=issue_token(
            request.app.state.jwt, sub=user.id, scopes=scopes, expires_in=settings.token_expires_in
        ),
        expires_in=settings.token_expires_in,
        scope=" ".join(scopes),
    )
    # RFC 6749 5.1: a response carrying a token is never cached.
    return JSONResponse(answer.model_dump(), headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


@operation(response=UserOut, authenticated=True, errors=[404], tags=["users"])
async def me(request: Request) -> UserOut:
    """The caller's own user."""
    actor = _actor(request)
    async with _service(request) as service:
        user = await service.get(actor, actor.user_id)
    return UserOut.model_validate(user)


@operation(response=UserOut, authenticated=True, errors=[404], tags=["users"])
async def get_user(request: Request) -> UserOut:
    """One user: the caller itself, or anyone for users:admin."""
    actor = _actor(request)
    async with _service(request) as service:
        user = await service.get(actor, request.path_params["user_id"])
    return UserOut.model_validate(user)


@operation(query=PageParams, response=Page[UserOut], scopes=[USERS_ADMIN], errors=[422], tags=["users"])
async def list_users(request: Request, query: PageParams) -> Page[UserOut]:
    """Every user, oldest first, a page at a time."""
    async with _service(request) as service:
        users, next_cursor = await service.list_page(limit=query.limit, cursor=query.cursor)
    return Page[UserOut](items=[UserOut.model_validate(user) for user in users], next_cursor=next_cursor)


@operation(body=UserUpdate, response=UserOut, authenticated=True, errors=[403, 404, 409], tags=["users"])
async def update_user(request: Request, body: UserUpdate) -> UserOut:
    """Change a user's name, email or password; its role too, for users:admin."""
    actor = _actor(request)
    async with _service(request) as service:
        user = await service.update(actor, request.path_params["user_id"], body)
    return UserOut.model_validate(user)


@operation(status_code=204, authenticated=True, errors=[404], tags=["users"])
async def delete_user(request: Request) -> None:
    """Delete a user: the caller itself, or anyone for users:admin."""
    actor = _actor(request)
    async with _service(request) as service:
        await service.delete(actor, request.path_params["user_id"])


routes = [
    route("/users", GET=list_users, POST=register),
    Route("/auth/token", token, methods=["POST"]),
    Route("/users/me", me, methods=["GET"]),
    route("/users/{user_id}", GET=get_user, PATCH=update_user, DELETE=delete_user),
]
