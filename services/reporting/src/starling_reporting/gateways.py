"""Outbound clients: the upstream orders API and the agents service's runs API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, Field, ValidationError

from starling_core.tokens import JWTConfig, issue_token
from starling_core.validation import unstorable
from starling_reporting.errors import AgentsUnavailable, OrdersUpstreamUnavailable, UpstreamUnavailable
from starling_reporting.schemas import AgentRunIn, OrderIn

# The agents service's scopes that its runs API checks (the agents service declares them itself).
AGENT_READ = "agent:read"
AGENT_ADMIN = "agent:admin"

SERVICE_SUBJECT = "service:reporting"
AGENTS_PAGE_SIZE = 200
# The longest cursor the extraction's checkpoint keeps (`ExtractionCheckpoint.cursor`).
MAX_CURSOR_LENGTH = 2000

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class OrdersPage:
    orders: list[OrderIn]
    # Where a later read resumes once this page is stored: the next page's cursor, or this page's
    # own cursor on the last page (orders appended there later are read again, not skipped).
    resume_cursor: str | None


class OrdersGateway(Protocol):
    def pages(self, cursor: str | None) -> AsyncIterator[OrdersPage]:
        """The upstream's orders from `cursor` on, a page at a time; `OrdersUpstreamUnavailable` when
        the upstream cannot be read."""
        ...


class AgentRunsGateway(Protocol):
    def runs(self, since: datetime | None) -> AsyncIterator[AgentRunIn]:
        """Every run created at or after `since`, as the agents service reports it; `AgentsUnavailable`
        when it cannot be read."""
        ...


class _OrdersPayload(BaseModel):
    items: list[OrderIn]
    next_cursor: str | None = Field(max_length=MAX_CURSOR_LENGTH)


class _RunsPayload(BaseModel):
    items: list[AgentRunIn]
    next_cursor: str | None


async def _read(
    client: httpx.AsyncClient,
    url: str,
    model: type[ModelT],
    *,
    unavailable: type[UpstreamUnavailable],
    params: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> ModelT:
    """`GET url` as `model`; any failure is `unavailable`, naming what went wrong."""
    # The client's RetryTransport has already retried connection errors and 429/5xx answers.
    try:
        response = await client.get(url, params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise unavailable(f"{url}: {type(exc).__name__}") from exc
    if response.status_code != 200:
        raise unavailable(f"{url}: HTTP {response.status_code}")
    try:
        data = response.json()
    except ValueError as exc:
        raise unavailable(f"{url}: the answer is not JSON") from exc
    # Text no database stores (a NUL, an unpaired surrogate) failed the write later, as a 500.
    problems = unstorable(data, ())
    if problems:
        raise unavailable(f"{url}: unexpected answer ({len(problems)} values no database stores)")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise unavailable(f"{url}: unexpected answer ({exc.error_count()} errors)") from exc


class HttpOrdersGateway:
    """`GET /orders?cursor=&limit=`, following `next_cursor` until it is null."""

    def __init__(self, client: httpx.AsyncClient, *, page_size: int = 100) -> None:
        self.client = client
        self.page_size = page_size

    async def pages(self, cursor: str | None) -> AsyncIterator[OrdersPage]:
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if cursor is not None:
                params["cursor"] = cursor
            payload = await _read(
                self.client, "orders", _OrdersPayload, unavailable=OrdersUpstreamUnavailable, params=params
            )
            last = payload.next_cursor is None
            yield OrdersPage(payload.items, cursor if last else payload.next_cursor)
            if last:
                return
            cursor = payload.next_cursor

    async def orders(self, cursor: str | None = None) -> AsyncIterator[OrderIn]:
        """The orders alone, as one stream."""
        async for page in self.pages(cursor):
            for order in page.orders:
                yield order


class HttpAgentRunsGateway:
    """`GET /api/v1/agents/runs?since=&limit=&cursor=` with a short-lived service token."""

    def __init__(
        self, client: httpx.AsyncClient, token: Callable[[], str], *, page_size: int = AGENTS_PAGE_SIZE
    ) -> None:
        self.client = client
        self.token = token
        self.page_size = page_size

    async def runs(self, since: datetime | None) -> AsyncIterator[AgentRunIn]:
        url = "api/v1/agents/runs"
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": self.page_size}
            if since is not None:
                params["since"] = since.isoformat()
            if cursor is not None:
                params["cursor"] = cursor
            headers = {"Authorization": f"Bearer {self.token()}"}
            payload = await _read(
                self.client, url, _RunsPayload, unavailable=AgentsUnavailable, params=params, headers=headers
            )
            for run in payload.items:
                yield run
            if payload.next_cursor is None:
                return
            cursor = payload.next_cursor


def service_token(config: JWTConfig) -> Callable[[], str]:
    """Mints a fresh one-minute token for each call to the agents service."""

    def mint() -> str:
        return issue_token(config, sub=SERVICE_SUBJECT, scopes=[AGENT_READ, AGENT_ADMIN], expires_in=60)

    return mint
