from __future__ import annotations

import base64
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import jwt
import pytest
from starlette.applications import Starlette
from starlette.endpoints import HTTPEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from starling_core.auth import (
    Scopes,
    authentication_middleware,
    current_user,
    requires_scopes,
    websocket_subprotocol,
)
from starling_core.errors import exception_handlers
from starling_core.tokens import JWTConfig, issue_token
from starling_testkit import FrozenClock

from .websockets import websocket_session

# Scopes of an imaginary service: core checks scopes, it does not know any service's.
AGENT_READ = "agent:read"
AGENT_ADMIN = "agent:admin"

SECRET = "starling-tests-secret-".ljust(64, "x")
CONFIG = JWTConfig(signing_key=SECRET, verifying_key=SECRET, issuer="starling-users")
OTHER_SECRET_CONFIG = replace(CONFIG, signing_key="y" * 64, verifying_key="y" * 64)
OTHER_ISSUER_CONFIG = replace(CONFIG, issuer="someone-else")


def token(*scopes: str, sub: str = "user-1", expires_in: int = 1800) -> str:
    return issue_token(CONFIG, sub=sub, scopes=scopes, expires_in=expires_in)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


@requires_scopes(AGENT_READ)
async def list_agents(request: Request) -> Response:
    return JSONResponse({"sub": current_user(request).sub})


@requires_scopes(AGENT_READ, AGENT_ADMIN)
async def delete_agent(request: Request) -> Response:
    return Response(status_code=204)


@requires_scopes()
async def me(request: Request) -> Response:
    user = current_user(request)
    return JSONResponse({"sub": user.sub, "scopes": sorted(user.scopes)})


async def whoami(request: Request) -> Response:
    return JSONResponse({"sub": current_user(request).sub})


async def public(request: Request) -> Response:
    return JSONResponse({"authenticated": request.user.is_authenticated})


class Runs(HTTPEndpoint):
    @requires_scopes(AGENT_READ)
    async def get(self, request: Request) -> Response:
        return JSONResponse({"sub": current_user(request).sub})


@requires_scopes(AGENT_READ)
async def run_events(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol=websocket_subprotocol(websocket))
    await websocket.send_json({"sub": websocket.user.identity})
    await websocket.close()


app = Starlette(
    routes=[
        Route("/agents", list_agents),
        Route("/agents/x", delete_agent, methods=["DELETE"]),
        Route("/me", me),
        Route("/whoami", whoami),
        Route("/public", public),
        Route("/runs", Runs),
        WebSocketRoute("/events", run_events),
    ],
    middleware=[authentication_middleware(CONFIG)],
    exception_handlers=exception_handlers(),
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


def b64url(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def unsigned_token() -> str:
    now = int(time.time())
    claims = {"sub": "user-1", "scopes": [AGENT_READ], "iat": now, "exp": now + 60, "iss": "starling-users"}
    return f"{b64url({'alg': 'none', 'typ': 'JWT'})}.{b64url(claims)}."


def token_without_exp() -> str:
    claims = {"sub": "user-1", "scopes": [AGENT_READ], "iat": int(time.time()), "iss": "starling-users"}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_request_without_token_gets_401_naming_the_authorization_header(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/agents")

    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


BAD_AUTHORIZATIONS = {
    "expired": f"Bearer {token(AGENT_READ, expires_in=-10)}",
    "wrong-secret": f"Bearer {issue_token(OTHER_SECRET_CONFIG, sub='user-1', scopes=[AGENT_READ])}",
    "alg-none": f"Bearer {unsigned_token()}",
    "wrong-issuer": f"Bearer {issue_token(OTHER_ISSUER_CONFIG, sub='user-1', scopes=[AGENT_READ])}",
    "no-exp": f"Bearer {token_without_exp()}",
    "garbage": "Bearer not-a-jwt",
    "basic-scheme": "Basic abc",
    "bearer-alone": "Bearer",
    "bearer-empty": "Bearer ",
    "empty-header": "",
}


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATIONS.values(), ids=BAD_AUTHORIZATIONS.keys())
async def test_bad_token_gets_401(client: httpx.AsyncClient, authorization: str) -> None:
    response = await client.get("/agents", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.json()["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_two_authorization_headers_get_401_whichever_is_good(client: httpx.AsyncClient) -> None:
    # A proxy that checks the last one while the app reads the first (or the other way round) would
    # each let a different caller through; Authorization is one field (RFC 9110 section 11.6.2).
    good, other = token(AGENT_READ), issue_token(OTHER_SECRET_CONFIG, sub="user-2", scopes=[AGENT_READ])
    for first, second in ((good, other), (other, good)):
        headers = [("Authorization", f"Bearer {first}"), ("Authorization", f"Bearer {second}")]
        response = await client.get("/agents", headers=headers)

        assert response.status_code == 401
        assert "one Authorization header" in response.json()["detail"]


async def test_expired_token_gets_401_saying_so(client: httpx.AsyncClient) -> None:
    response = await client.get("/agents", headers=bearer(token(AGENT_READ, expires_in=-10)))

    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_token_that_served_is_refused_once_it_expires(
    client: httpx.AsyncClient, frozen_clock: FrozenClock
) -> None:
    # The backend keeps the tokens it verified; a kept one still expires.
    kept = bearer(token(AGENT_READ, expires_in=60))
    assert (await client.get("/agents", headers=kept)).status_code == 200

    frozen_clock.tick(60)
    response = await client.get("/agents", headers=kept)

    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}


async def test_token_with_scope_gets_through(client: httpx.AsyncClient) -> None:
    response = await client.get("/agents", headers=bearer(token(AGENT_READ)))

    assert response.status_code == 200
    assert response.json() == {"sub": "user-1"}


async def test_token_without_the_scope_gets_403_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/agents", headers=bearer(token("reports:read")))

    assert response.status_code == 403
    assert response.json() == {"detail": "Missing required scope: agent:read"}


async def test_403_names_only_the_scopes_that_are_missing(client: httpx.AsyncClient) -> None:
    response = await client.delete("/agents/x", headers=bearer(token(AGENT_READ)))

    assert response.status_code == 403
    assert response.json() == {"detail": "Missing required scope: agent:admin"}


async def test_route_requiring_no_scope_takes_any_valid_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/me", headers=bearer(token()))

    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "scopes": []}


async def test_route_requiring_no_scope_still_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/me")

    assert response.status_code == 401


async def test_current_user_without_token_gets_401(client: httpx.AsyncClient) -> None:
    response = await client.get("/whoami")

    assert response.status_code == 401
    assert "Authorization" in response.json()["detail"]


async def test_public_route_serves_anonymous_callers(client: httpx.AsyncClient) -> None:
    response = await client.get("/public")

    assert response.status_code == 200
    assert response.json() == {"authenticated": False}


async def test_scopes_guard_an_endpoint_method(client: httpx.AsyncClient) -> None:
    assert (await client.get("/runs")).status_code == 401
    assert (await client.get("/runs", headers=bearer(token("reports:read")))).status_code == 403
    assert (await client.get("/runs", headers=bearer(token(AGENT_READ)))).status_code == 200


def test_declared_scopes_list_the_users_then_the_administrators() -> None:
    scopes = Scopes(user=(AGENT_READ,), admin=(AGENT_ADMIN,))
    assert scopes.all == (AGENT_READ, AGENT_ADMIN)
    assert Scopes().all == ()


@pytest.mark.parametrize(
    "query",
    ["", "token=", "token=garbage", f"token={token(AGENT_READ, expires_in=-10)}"],
    ids=["no-token", "empty-token", "garbage", "expired"],
)
async def test_websocket_without_a_valid_token_is_closed_with_1008(query: str) -> None:
    messages = await websocket_session(app, "/events", query)

    assert [(m["type"], m.get("code")) for m in messages] == [
        ("websocket.accept", None),
        ("websocket.close", 1008),
    ]


async def test_websocket_token_without_the_scope_is_closed_with_1008() -> None:
    messages = await websocket_session(app, "/events", f"token={token('reports:read')}")

    assert [m["type"] for m in messages] == ["websocket.accept", "websocket.close"]
    assert messages[-1] == {
        "type": "websocket.close",
        "code": 1008,
        "reason": "Missing required scope: agent:read",
    }


async def test_websocket_with_token_and_scope_is_accepted() -> None:
    messages = await websocket_session(app, "/events", f"token={token(AGENT_READ)}")

    assert messages[0]["type"] == "websocket.accept"
    assert json.loads(messages[1]["text"]) == {"sub": "user-1"}
    assert messages[-1] == {"type": "websocket.close", "code": 1000, "reason": ""}


@pytest.mark.parametrize(
    "header",
    [f"Bearer {token(AGENT_READ, expires_in=-10)}", "Bearer garbage", "Basic dXNlcjpwdw==", "Bearer"],
    ids=["expired", "garbage", "other-scheme", "no-token"],
)
async def test_a_public_route_ignores_a_stale_or_broken_authorization_header(
    client: httpx.AsyncClient, header: str
) -> None:
    response = await client.get("/public", headers={"Authorization": header})
    assert response.status_code == 200
    assert response.json() == {"authenticated": False}


async def test_a_protected_route_says_why_a_token_was_refused(client: httpx.AsyncClient) -> None:
    response = await client.get("/agents", headers=bearer(token(AGENT_READ, expires_in=-10)))
    assert response.status_code == 401
    assert response.json() == {"detail": "Token has expired"}
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'


async def test_a_websocket_token_can_travel_in_the_bearer_subprotocol_not_the_url() -> None:
    messages = await websocket_session(app, "/events", protocols=["bearer", token(AGENT_READ)])

    assert messages[0] == {"type": "websocket.accept", "subprotocol": "bearer", "headers": []}
    assert json.loads(messages[1]["text"]) == {"sub": "user-1"}


@pytest.mark.parametrize(
    "protocols",
    [["bearer"], ["bearer", "garbage"], ["bearer", token(AGENT_READ, expires_in=-10)]],
    ids=["no-token", "garbage", "expired"],
)
async def test_a_bad_bearer_subprotocol_is_closed_with_1008(protocols: list[str]) -> None:
    messages = await websocket_session(app, "/events", protocols=protocols)
    # accepted with the protocol the client offered, or a browser would drop it before seeing 1008
    assert messages[0] == {"type": "websocket.accept", "subprotocol": "bearer", "headers": []}
    assert messages[-1]["code"] == 1008
