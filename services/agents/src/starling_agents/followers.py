"""The WebSocket side of following a run: admitted on the caller's rate limit, gone with its client.

Each follower holds a subscription and re-reads its run every `STARLING_AGENTS_EVENTS_POLL` seconds, so
followers cost the service for as long as they live. Three things bound them:

- Opening one is a hit on the caller's rate limit, the same count (backend and rate) as the `/api/`
  routes, which core's middleware limits for HTTP only; over it, the socket is closed with 4429.
- The client's side is read beside the events, so a disconnect ends the follower at once, not at the
  run's next status change.
- A follower that sent nothing for `STARLING_AGENTS_EVENTS_IDLE_TIMEOUT` seconds is closed with 4408.
- Its token is checked again at every poll: once it expires, or a logout, demotion, password change or
  deletion revokes it, the follower is closed with 1008, as a new one would be refused.

Every refusal accepts before it closes, so that a client sees the close code and reason rather than a
failed handshake, and accepts with the `bearer` subprotocol when the client offered its token that way:
a browser drops a connection whose server does not select the protocol it offered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from starlette import status
from starlette.exceptions import HTTPException
from starlette.websockets import WebSocket, WebSocketDisconnect

from starling_agents.events import Event, FollowerIdle, Reread, final_events, follow, status_event
from starling_agents.models import UNFINISHED, Run
from starling_core.auth import check_scopes, token_ended, websocket_subprotocol
from starling_core.db import DatabaseUnavailable
from starling_core.ratelimit import Rate, RateLimitBackend

NOT_FOUND_CLOSE_CODE = 4404
IDLE_CLOSE_CODE = 4408
RATE_LIMITED_CLOSE_CODE = 4429
TASK_PREFIX = "agents-follower-"  # a follower's task is named this and its run's id


# A close frame is a control frame: 125 bytes at most, two of them the code.
MAX_REASON_BYTES = 123


async def refuse(websocket: WebSocket[Any], code: int, reason: str) -> None:
    """Accept, then close with `code` and `reason` (cut to what a close frame holds: it names the
    run id from the path, which may be of any length)."""
    await websocket.accept(subprotocol=websocket_subprotocol(websocket))
    fitting = reason.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
    await websocket.close(code=code, reason=fitting)


async def authorized(websocket: WebSocket[Any], scopes: Sequence[str]) -> bool:
    """True when the caller holds `scopes`; else the socket is closed 1008, saying why."""
    try:
        check_scopes(websocket, scopes)
    except HTTPException as refusal:
        await refuse(websocket, status.WS_1008_POLICY_VIOLATION, refusal.detail)
        return False
    return True


class Followers:
    """What every run's WebSocket shares, built once in the lifespan."""

    def __init__(
        self, limiter: RateLimitBackend, rate: Rate, *, poll: float = 1.0, idle_timeout: float = 300.0
    ) -> None:
        self.limiter = limiter
        self.rate = rate
        self.poll = poll  # STARLING_AGENTS_EVENTS_POLL
        self.idle_timeout = idle_timeout  # STARLING_AGENTS_EVENTS_IDLE_TIMEOUT

    async def admit(self, websocket: WebSocket[Any]) -> bool:
        """One hit on the caller's rate limit; False, the socket closed, when it is spent."""
        # Counted as core's RateLimitMiddleware counts: by token subject, else by address, so that a
        # follower and a request spend one allowance, and guessing tokens here is limited too.
        user = websocket.user
        caller = f"user:{user.identity}" if user.is_authenticated else f"addr:{_address(websocket)}"
        try:
            result = await self.limiter.hit(caller, self.rate)
        except DatabaseUnavailable:
            await refuse(websocket, status.WS_1013_TRY_AGAIN_LATER, "Service unavailable, try again later")
            return False
        if not result.allowed:
            await refuse(websocket, RATE_LIMITED_CLOSE_CODE, "Rate limit exceeded")
        return result.allowed

    async def follow(
        self, websocket: WebSocket[Any], run: Run, queue: asyncio.Queue[Event], reread: Reread
    ) -> None:
        """Accept, send the run's events until `done` and close; stop as soon as the client goes.

        `queue` is the run's subscription, taken before `run` was read; `reread()` reads it again.
        """
        await websocket.accept(subprotocol=websocket_subprotocol(websocket))
        stop = asyncio.Event()
        sending = asyncio.create_task(
            self._send(websocket, run, queue, reread, stop), name=f"{TASK_PREFIX}{run.run_id}"
        )
        listening = asyncio.ensure_future(_disconnected(websocket))
        try:
            await asyncio.wait((sending, listening), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()  # the sender stops at its next wait, never in the middle of a database read
            listening.cancel()
            await asyncio.gather(listening, return_exceptions=True)
            await sending

    async def _send(
        self,
        websocket: WebSocket[Any],
        run: Run,
        queue: asyncio.Queue[Event],
        reread: Reread,
        stop: asyncio.Event,
    ) -> None:
        code, reason = status.WS_1000_NORMAL_CLOSURE, None
        try:
            await websocket.send_json(status_event(run.status))
            if run.status not in UNFINISHED:
                for event in final_events(run.status, run.output):
                    await websocket.send_json(event)
            else:

                async def reread_while_the_token_holds() -> tuple[str, str | None] | None:
                    if (ended := token_ended(websocket)) is not None:
                        raise TokenEnded(ended)
                    return await reread()

                events = follow(
                    queue,
                    reread_while_the_token_holds,
                    status=run.status,
                    unfinished=UNFINISHED,
                    poll=self.poll,
                    idle=self.idle_timeout,
                    stop=stop,
                )
                try:
                    async with contextlib.aclosing(events):
                        async for event in events:
                            await websocket.send_json(event)
                except FollowerIdle as idle:
                    code, reason = IDLE_CLOSE_CODE, str(idle)
                except TokenEnded as ended:
                    code, reason = status.WS_1008_POLICY_VIOLATION, str(ended)
            if not stop.is_set():  # else the client went away: nobody to close to
                await websocket.close(code=code, reason=reason)
        except WebSocketDisconnect:
            return


class TokenEnded(Exception):
    """The follower's token expired or was revoked while it followed: why, as its close reason."""


async def _disconnected(websocket: WebSocket[Any]) -> None:
    """Return when the client disconnects; a follower's client has nothing else to say."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def _address(websocket: WebSocket[Any]) -> str:
    return websocket.client.host if websocket.client else "unknown"
