"""The route template logs and metrics name a request by: never the raw path."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from starling_core._routing import UNMATCHED, route_template


async def ok(request: Any) -> PlainTextResponse:
    return PlainTextResponse("ok")


def make_app(tmp_path: Any) -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id:int}", ok, methods=["GET"]),
            Mount("/v1", routes=[Route("/things/{name}", ok)]),
            Mount("/static", StaticFiles(directory=tmp_path)),
        ]
    )


async def template_after(app: Starlette, method: str, path: str) -> str:
    """The template the scope names once the app has answered, as the middleware reads it."""
    scope: Scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"token=secret",
        "headers": [],
    }

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        pass

    await app(scope, receive, send)
    return route_template(scope)


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/items/42", "/items/{item_id:int}"),
        ("POST", "/items/42", "/items/{item_id:int}"),  # a 405: the path's route all the same
        ("GET", "/v1/things/abc", "/v1/things/{name}"),
        ("GET", "/static/app.css", "/static/{path}"),
        ("GET", "/nowhere/42", UNMATCHED),
    ],
)
async def test_a_request_is_named_by_its_routes_template(
    tmp_path: Any, method: str, path: str, expected: str
) -> None:
    assert await template_after(make_app(tmp_path), method, path) == expected


def test_a_request_refused_before_routing_is_matched_from_the_apps_routes(tmp_path: Any) -> None:
    app = make_app(tmp_path)
    scope: Scope = {"type": "http", "method": "GET", "path": "/items/7", "root_path": "", "app": app}

    assert route_template(scope) == "/items/{item_id:int}"


def test_without_an_app_an_unrouted_request_is_unmatched() -> None:
    assert route_template({"type": "http", "method": "GET", "path": "/x"}) == UNMATCHED


def test_a_plain_router_works_as_well(tmp_path: Any) -> None:
    router = Router(routes=[Route("/a/{b}", ok)])
    scope: Scope = {"type": "http", "method": "GET", "path": "/a/1", "root_path": "", "app": router}

    assert route_template(scope) == "/a/{b}"


_ = (Receive, Send)
