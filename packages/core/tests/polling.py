"""Waiting for work that other tasks and processes do at their own pace (a relay, a consumer, a broker)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

TIMEOUT = 20.0  # seconds anything may take on a loaded 2-core machine; usually well under one


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds; fail naming `what` after `TIMEOUT` seconds."""
    try:
        async with asyncio.timeout(TIMEOUT):
            # polling: the state lives in another task, the database or the broker, with no event to await
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {TIMEOUT:.0f} s: {what}") from None
