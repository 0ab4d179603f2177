from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from starling_core.http import RetryTransport, create_http_client


class Upstream:
    """A mock transport that answers from a script, one entry a call, and counts the calls."""

    def __init__(self, *script: httpx.Response | type[httpx.TransportError]) -> None:
        self.script = list(script)
        self.calls = 0
        self.transport = httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        entry = self.script[min(self.calls, len(self.script) - 1)]
        self.calls += 1
        if isinstance(entry, httpx.Response):
            return httpx.Response(entry.status_code, headers=entry.headers, content=entry.content)
        raise entry("scripted failure", request=request)


class Sleeps(list[float]):
    async def __call__(self, delay: float) -> None:
        self.append(delay)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


async def test_503_is_retried_until_it_succeeds(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(503), httpx.Response(503), httpx.Response(200, json={"ok": True}))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.get("/orders")

    assert response.status_code == 200
    assert response.json() == {"ok": True}
    assert upstream.calls == 3


async def test_gives_up_after_the_retries_and_returns_the_last_response(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(503, json={"detail": "down"}))
    async with create_http_client(
        "http://upstream", transport=upstream.transport, sleep=sleeps, retries=2
    ) as client:
        response = await client.get("/orders")

    assert response.status_code == 503
    assert response.json() == {"detail": "down"}
    assert upstream.calls == 3


@pytest.mark.parametrize("status_code", [429, 502, 504])
async def test_other_retryable_statuses_are_retried(sleeps: Sleeps, status_code: int) -> None:
    upstream = Upstream(httpx.Response(status_code), httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.get("/orders")

    assert response.status_code == 200
    assert upstream.calls == 2


@pytest.mark.parametrize("status_code", [400, 404, 500])
async def test_other_errors_are_not_retried(sleeps: Sleeps, status_code: int) -> None:
    upstream = Upstream(httpx.Response(status_code), httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.get("/orders")

    assert response.status_code == status_code
    assert upstream.calls == 1
    assert sleeps == []


async def test_connect_error_is_retried(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.ConnectError, httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.get("/orders")

    assert response.status_code == 200
    assert upstream.calls == 2


async def test_read_timeout_on_get_is_retried(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.ReadTimeout, httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.get("/orders")

    assert response.status_code == 200
    assert upstream.calls == 2


async def test_last_transport_error_is_raised_after_the_retries(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.ConnectError)
    async with create_http_client(
        "http://upstream", transport=upstream.transport, sleep=sleeps, retries=3
    ) as client:
        with pytest.raises(httpx.ConnectError):
            await client.get("/orders")

    assert upstream.calls == 4


async def test_post_is_not_retried_on_503(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(503), httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.post("/orders", json={"id": 1})

    assert response.status_code == 503
    assert upstream.calls == 1


async def test_post_is_not_retried_on_a_read_timeout(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.ReadTimeout, httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.post("/orders", json={"id": 1})

    assert upstream.calls == 1


async def test_post_is_retried_when_the_connection_never_opened(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.ConnectError, httpx.Response(201))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.post("/orders", json={"id": 1})

    assert response.status_code == 201
    assert upstream.calls == 2


async def test_post_is_retried_on_503_when_allowed(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(503), httpx.Response(201))
    async with create_http_client(
        "http://upstream", transport=upstream.transport, sleep=sleeps, retry_non_idempotent=True
    ) as client:
        response = await client.post("/orders", json={"id": 1})

    assert response.status_code == 201
    assert upstream.calls == 2


async def test_streamed_body_is_not_sent_twice(sleeps: Sleeps) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"chunk"

    upstream = Upstream(httpx.Response(503), httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        response = await client.put("/orders/1", content=body())

    assert response.status_code == 503
    assert upstream.calls == 1


async def test_retry_after_sets_the_wait(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(429, headers={"Retry-After": "2"}), httpx.Response(200))
    async with create_http_client("http://upstream", transport=upstream.transport, sleep=sleeps) as client:
        await client.get("/orders")

    assert sleeps == [2.0]


async def test_retry_after_is_capped_at_the_maximum_backoff(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(503, headers={"Retry-After": "3600"}), httpx.Response(200))
    async with create_http_client(
        "http://upstream", transport=upstream.transport, sleep=sleeps, max_backoff=5.0
    ) as client:
        await client.get("/orders")

    assert sleeps == [5.0]


async def test_retry_after_as_a_date_falls_back_to_backoff(sleeps: Sleeps) -> None:
    upstream = Upstream(
        httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), httpx.Response(200)
    )
    async with create_http_client(
        "http://upstream", transport=upstream.transport, sleep=sleeps, backoff=0.2
    ) as client:
        await client.get("/orders")

    assert sleeps == [0.2]


async def test_backoff_doubles_each_attempt_up_to_the_cap(sleeps: Sleeps) -> None:
    upstream = Upstream(httpx.Response(503))
    async with create_http_client(
        "http://upstream", transport=upstream.transport, sleep=sleeps, retries=5, backoff=0.5, max_backoff=4.0
    ) as client:
        await client.get("/orders")

    assert sleeps == pytest.approx([0.5, 1.0, 2.0, 4.0, 4.0])


async def test_discarded_responses_are_closed(sleeps: Sleeps) -> None:
    closed: list[int] = []

    class TrackedStream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield b"busy"

        async def aclose(self) -> None:
            closed.append(1)

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if not closed else 200, stream=TrackedStream())

    async with create_http_client(
        "http://upstream", transport=httpx.MockTransport(handler), sleep=sleeps
    ) as client:
        response = await client.get("/orders")

    assert response.status_code == 200
    assert len(closed) == 2  # the discarded 503, then the 200 once the client read it


async def test_client_reaches_an_in_process_app_with_its_settings() -> None:
    async def echo(request: Request) -> JSONResponse:
        return JSONResponse({"path": request.url.path, "token": request.headers.get("authorization")})

    app = Starlette(routes=[Route("/orders", echo)])
    async with create_http_client(
        "http://upstream",
        transport=httpx.ASGITransport(app=app),
        headers={"Authorization": "Bearer service-token"},
        timeout=3.0,
        connect_timeout=1.0,
    ) as client:
        response = await client.get("/orders")

    assert response.json() == {"path": "/orders", "token": "Bearer service-token"}
    assert client.timeout == httpx.Timeout(3.0, connect=1.0)


async def test_retry_transport_wraps_a_default_http_transport() -> None:
    async with RetryTransport() as transport:
        assert isinstance(transport.transport, httpx.AsyncHTTPTransport)
