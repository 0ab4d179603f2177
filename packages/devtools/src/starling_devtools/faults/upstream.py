"""The upstream scenario: an orders API that drops connections while reporting extracts from it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from starling_devtools import harness
from starling_devtools.faults.common import CLIENT_TIMEOUT, REPORT_SCOPES, Options
from starling_devtools.harness import logs
from starling_devtools.seed import units
from starling_devtools.soak.callers import make_order
from starling_devtools.soak.verification import stored_orders, top_products


@dataclass
class FakeUpstream:
    """`GET /orders?cursor=&limit=` over raw asyncio streams, dropping every `drop_every`-th request.

    Drops alternate between closing before any answer (the client's transport retries that) and
    closing half-way through the body (the extraction run fails and the next one resumes).
    """

    orders: list[dict[str, Any]]
    drop_every: int = 3  # 0: every request served (fuzz's upstream)
    requests: list[tuple[int, str]] = field(default_factory=list)  # (offset asked, what happened)

    def page(self, cursor: str | None, limit: int) -> dict[str, Any]:
        start = offset_of(cursor)
        end = start + max(1, limit)
        return {
            "items": self.orders[start:end],
            "next_cursor": f"o-{end}" if end < len(self.orders) else None,
        }

    def fate(self) -> str:
        number = len(self.requests) + 1
        if not self.drop_every or number % self.drop_every:
            return "served"
        return "dropped before answering" if (number // self.drop_every) % 2 else "dropped mid-body"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                target = head.split(b" ", 2)[1].decode()
                parts = urlsplit(target)
                if parts.path != "/orders":
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    await writer.drain()
                    continue
                query = parse_qs(parts.query)
                cursor = query.get("cursor", [None])[0]
                limit = int(query.get("limit", ["100"])[0])
                fate = self.fate()
                self.requests.append((offset_of(cursor), fate))
                if fate == "dropped before answering":
                    return
                body = json.dumps(self.page(cursor, limit)).encode()
                head_out = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                )
                if fate == "dropped mid-body":
                    writer.write(head_out.encode() + body[: len(body) // 2])
                    await writer.drain()
                    return
                writer.write(head_out.encode() + body)
                await writer.drain()
        finally:
            writer.close()


def offset_of(cursor: str | None) -> int:
    return int(cursor[2:]) if cursor and cursor.startswith("o-") and cursor[2:].isdigit() else 0


def upstream_orders(first: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Orders `up-<first>` on, as the soak makes them: reproducible from `rng`."""
    return [make_order(rng, f"up-{number:05d}") for number in range(first, first + count)]


@contextlib.asynccontextmanager
async def serving(upstream: FakeUpstream) -> AsyncIterator[str]:
    """`upstream` on a free loopback port; yields its base URL."""
    server = await asyncio.start_server(upstream.handle, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


@contextlib.contextmanager
def serving_in_thread(upstream: FakeUpstream) -> Iterator[str]:
    """`serving` on an event loop of its own in a thread, for a caller that blocks (fuzz runs
    schemathesis as a subprocess and waits); yields the base URL."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="upstream", daemon=True)
    thread.start()
    served = serving(upstream)
    try:
        yield asyncio.run_coroutine_threadsafe(served.__aenter__(), loop).result(timeout=10)
        asyncio.run_coroutine_threadsafe(served.__aexit__(None, None, None), loop).result(timeout=10)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


async def upstream_drops(options: Options, directory: Path) -> list[harness.Check]:
    rng = random.Random(11)  # noqa: S311 - reproducible orders, not a secret
    page_size = 64
    upstream = FakeUpstream(upstream_orders(0, options.orders, rng))
    settings = {
        "STARLING_REPORTING_UPSTREAM_PAGE_SIZE": str(page_size),
        "STARLING_REPORTING_EXTRACTION_INTERVAL": "0.2",
    }
    # the upstream answers from a thread of its own while the services start and run
    with serving_in_thread(upstream) as upstream_url:
        settings["STARLING_REPORTING_UPSTREAM_URL"] = upstream_url
        run = harness.run(directory, root=options.root, names=["reporting"], settings={"reporting": settings})
        with run as stack:
            url = stack.databases.urls["reporting"]
            first = await _wait_extracted(url, upstream)
            upstream.orders.extend(upstream_orders(options.orders, 150, rng))  # the last page and new ones
            second = await _wait_extracted(url, upstream)
            token = stack.environment.mint("faults-reports", REPORT_SCOPES)
            async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT) as client:
                api_units = await top_products(client, stack.urls["reporting"], token)
    stored_ids, stored_units = await stored_orders(url)
    checkpoint = (await harness.query(url, "SELECT cursor FROM extraction_checkpoints"))[0][0]
    expected_ids = {o["order_id"] for o in upstream.orders}
    expected_units = units(upstream.orders)
    offsets = [offset for offset, _ in upstream.requests]
    backwards = sum(later < earlier for earlier, later in itertools.pairwise(offsets))
    fates = Counter(fate for _, fate in upstream.requests)
    last_page = f"o-{((len(upstream.orders) - 1) // page_size) * page_size}"
    return [
        harness.check(
            "the upstream dropped connections both ways",
            fates["dropped mid-body"] > 0 and fates["dropped before answering"] > 0,
            f"{len(upstream.requests)} requests: {dict(fates)}",
        ),
        harness.check(
            "extraction resumed from its checkpoint, never from an earlier point",
            backwards == 0,
            f"{backwards} requests went back in the stream; complete after {first:.1f} s, "
            f"appended orders after {second:.1f} s more",
        ),
        harness.check(
            "stored orders = the upstream's, each once",
            stored_ids == expected_ids,
            f"{len(stored_ids)} stored of {len(expected_ids)} ({options.orders} + 150 appended); "
            f"missing {len(expected_ids - stored_ids)}, extra {len(stored_ids - expected_ids)}",
        ),
        units_check("upstream", expected_units, stored_units, api_units),
        harness.check(
            "the checkpoint advanced to the last page",
            checkpoint == last_page,
            f"checkpoint {checkpoint!r}, last page {last_page!r}",
        ),
        logs.tracebacks_check(stack.logs),
    ]


def units_check(
    source: str, expected: Mapping[str, int], stored: Mapping[str, int], api: Mapping[str, int]
) -> harness.Check:
    """Units per product as `source` has them, as reporting's database has them, and in /top-products."""
    return harness.check(
        f"units per product: database = /top-products = {source}",
        stored == expected == api,
        f"{sum(expected.values())} units over {len(expected)} products ({source}), "
        f"{sum(stored.values())} stored, {sum(api.values())} in /top-products",
    )


async def _wait_extracted(url: str, upstream: FakeUpstream) -> float:
    """Seconds until the reporting database holds every upstream order (-1.0 if it never does)."""
    began = time.monotonic()
    expected = len(upstream.orders)

    async def complete() -> bool:
        with contextlib.suppress(Exception):  # the tables appear with the service's migrations
            rows = await harness.query(url, "SELECT count(*) FROM orders")
            return bool(rows[0][0] == expected)
        return False

    done = await harness.wait_for(complete, within=120, interval=0.2)
    return time.monotonic() - began if done else -1.0
