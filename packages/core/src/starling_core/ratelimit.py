"""Per-caller fixed-window rate limiting, exact under concurrent requests."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from starling_core.errors import error_response

_SECONDS = {
    **dict.fromkeys(("s", "sec", "secs", "second", "seconds"), 1),
    **dict.fromkeys(("m", "min", "mins", "minute", "minutes"), 60),
    **dict.fromkeys(("h", "hour", "hours"), 3600),
    **dict.fromkeys(("d", "day", "days"), 86400),
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*", re.IGNORECASE | re.ASCII)


@dataclass(frozen=True)
class Rate:
    limit: int
    window: int  # seconds

    def __post_init__(self) -> None:
        if self.limit < 1 or self.window < 1:
            raise ValueError(f"Rate limit and window must be at least 1, got {self.limit}/{self.window}s")


def parse_rate(text: str) -> Rate:
    """Read "60/minute", "10/second", "1000/hour", "5/day" or "100/30s"."""
    match = _RATE.fullmatch(text)
    unit = _SECONDS.get(match.group(3).lower()) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"Invalid rate {text!r}: expected <count>/<period> such as '60/minute', '10/second' or '100/30s'"
        )
    return Rate(int(match.group(1)), int(match.group(2) or 1) * unit)


@dataclass(frozen=True)
class RateLimitResult:
    allowed: bool
    limit: int
    remaining: int
    reset_after: float  # seconds until the window resets


class RateLimitBackend(Protocol):
    async def hit(self, key: str, rate: Rate) -> RateLimitResult: ...


class MemoryRateLimitBackend:
    """Counts in this process only; replicas that must share one count need a shared backend."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock or _now
        # Windows are aligned to the clock, so every caller of a rate shares one window: when it
        # ends, the counts of the whole window go at once and memory holds only the current one.
        self._windows: dict[Rate, tuple[int, dict[str, int]]] = {}

    async def hit(self, key: str, rate: Rate) -> RateLimitResult:
        # No await from the read to the write: concurrent requests on the loop cannot both take
        # the last slot.
        now = self._clock()
        index = int(now // rate.window)
        window = self._windows.get(rate)
        if window is None or window[0] != index:
            window = self._windows[rate] = (index, {})
        counts = window[1]
        used = counts.get(key, 0)
        reset_after = (index + 1) * rate.window - now
        if used >= rate.limit:
            return RateLimitResult(False, rate.limit, 0, reset_after)
        counts[key] = used + 1
        return RateLimitResult(True, rate.limit, rate.limit - used - 1, reset_after)


class RateLimitMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        rate: Rate,
        backend: RateLimitBackend,
        path_prefixes: Sequence[str] = ("/api/",),
    ) -> None:
        self.app = app
        self.rate = rate
        self.backend = backend
        self.path_prefixes = tuple(prefix.rstrip("/") for prefix in path_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._is_limited(scope["path"]):
            await self.app(scope, receive, send)
            return

        result = await self.backend.hit(_caller(scope), self.rate)
        reset = str(max(1, math.ceil(result.reset_after)))
        headers = {
            "RateLimit-Limit": str(result.limit),
            "RateLimit-Remaining": str(result.remaining),
            "RateLimit-Reset": reset,
        }
        if not result.allowed:
            response = error_response(429, "Rate limit exceeded", {**headers, "Retry-After": reset})
            await response(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(headers)
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _is_limited(self, path: str) -> bool:
        # "/users" covers "/users" and "/users/..." but not "/usersx".
        return any(path == prefix or path.startswith(prefix + "/") for prefix in self.path_prefixes)


def _caller(scope: Scope) -> str:
    # scope["user"] is set by AuthenticationMiddleware, which runs before this middleware.
    user = scope.get("user")
    if user is not None and user.is_authenticated:
        return f"user:{user.identity}"
    client = scope.get("client")
    return f"addr:{client[0] if client else 'unknown'}"


def _now() -> float:
    # Looked up per call, so that a frozen test clock moves the windows too.
    return time.time()
