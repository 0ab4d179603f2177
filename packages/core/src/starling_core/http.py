"""Outbound HTTP: an httpx client with timeouts and bounded retries with exponential backoff."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping

import httpx

logger = logging.getLogger("starling.http")

RETRY_STATUSES = frozenset({429, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})

Sleep = Callable[[float], Awaitable[None]]


class RetryTransport(httpx.AsyncBaseTransport):
    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        retries: int = 3,
        backoff: float = 0.2,
        max_backoff: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        retry_non_idempotent: bool = False,
    ) -> None:
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.sleep = sleep
        self.retry_non_idempotent = retry_non_idempotent

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # A POST that reached the server may have done its work even if the answer was an error, so
        # only a request that never left (a failed connect) is safe to send again. A streamed body
        # is gone once sent, so it can only be sent again after a failed connect too.
        may_repeat = isinstance(request.stream, httpx.ByteStream) and (
            self.retry_non_idempotent or request.method in IDEMPOTENT_METHODS
        )
        attempt = 0
        while True:
            try:
                response = await self.transport.handle_async_request(request)
            except httpx.TransportError as exc:
                never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                if attempt >= self.retries or not (may_repeat or never_sent):
                    raise
                delay = self._backoff(attempt)
                reason = type(exc).__name__
            else:
                if attempt >= self.retries or not may_repeat or response.status_code not in RETRY_STATUSES:
                    return response
                retry_after = _retry_after(response, self.max_backoff)
                delay = self._backoff(attempt) if retry_after is None else retry_after
                reason = str(response.status_code)
                await response.aclose()
            attempt += 1
            logger.info(
                "retrying %s %s after %s in %.2fs (attempt %d of %d)",
                request.method,
                request.url,
                reason,
                delay,
                attempt + 1,
                self.retries + 1,
            )
            await self.sleep(delay)

    async def aclose(self) -> None:
        await self.transport.aclose()

    def _backoff(self, attempt: int) -> float:
        return float(min(self.backoff * 2**attempt, self.max_backoff))


def _retry_after(response: httpx.Response, cap: float) -> float | None:
    # Only the delay-seconds form; an HTTP date falls back to the client's own backoff.
    try:
        seconds = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cap)


def create_http_client(
    base_url: str = "",
    *,
    timeout: float = 10.0,
    connect_timeout: float = 5.0,
    retries: int = 3,
    backoff: float = 0.2,
    max_backoff: float = 5.0,
    transport: httpx.AsyncBaseTransport | None = None,
    headers: Mapping[str, str] | None = None,
    sleep: Sleep = asyncio.sleep,
    retry_non_idempotent: bool = False,
) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        timeout=httpx.Timeout(timeout, connect=connect_timeout),
        headers=headers,
        transport=RetryTransport(
            transport,
            retries=retries,
            backoff=backoff,
            max_backoff=max_backoff,
            sleep=sleep,
            retry_non_idempotent=retry_non_idempotent,
        ),
    )
