"""The broker scenario: the Kafka broker gone and back while orders stream to reporting.

An upstream shop (in this process) places orders through core's outbox and relay, as any service
publishes, onto the `orders` topic of a broker from the kit's pinned wheel; reporting, a real process,
consumes them, and some of the same orders are also posted to it over HTTP. Every client reaches the
broker through a TCP proxy that the broker advertises as its address. Mid-stream the proxy cuts every
connection and refuses new ones for the outage, then listens again: to the clients, the broker
stopped and started again, its log and its groups' committed offsets kept, as a Kafka broker keeps them
on disk. (The test broker keeps them in memory only, so restarting its process would be a broker that
lost its data, not a restart.) Reporting must then hold every order exactly once: the inbox skips an
event it handled, `order_id` skips an order it has (posted too), and nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from starling_core import schema as core_schema
from starling_core.db import Database
from starling_core.events import Outbox, Relay
from starling_core.events.kafka import KafkaBroker, KafkaOptions
from starling_core.events.topics import ORDER_PLACED, OrderPlaced
from starling_devtools import harness
from starling_devtools.faults.common import CLIENT_TIMEOUT, REPORT_SCOPES, Options, squeeze
from starling_devtools.faults.upstream import units_check, upstream_orders
from starling_devtools.harness import bearer, logs
from starling_devtools.seed import units
from starling_devtools.soak.verification import stored_orders, top_products
from starling_servers import kafka

POSTED_TOO = 5  # every fifth order also reaches reporting by POST /api/v1/orders
PACE = 0.02  # seconds each writer waits between orders: the stream lasts seconds, the outage is in it


@dataclass
class Shop:
    """The upstream: orders written to its outbox, one transaction each, and core's relay sending them."""

    database: Database
    relay: Relay
    placed: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=list)  # the relay's state, sampled, for the report

    async def place(self, order: dict[str, Any]) -> None:
        async with self.database.transaction() as session:
            await Outbox(session).add(
                ORDER_PLACED, key=order["order_id"], payload=OrderPlaced.model_validate(order)
            )
        self.placed.append(order["order_id"])

    async def pending(self) -> int:
        async with self.database.session() as session:
            count, _ = await Outbox(session).depth()
        return count


@contextlib.contextmanager
def quiet_clients() -> Iterator[None]:
    """The shop's Kafka client and relay log each failed attempt in the outage: expected here, and the
    report says what happened; reporting's own lines go to its log."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@contextlib.asynccontextmanager
async def shop_on(path: Path, bootstrap: str) -> AsyncIterator[Shop]:
    database = Database.from_url(f"sqlite+aiosqlite:///{path}")
    async with database.engine.begin() as connection:
        await connection.run_sync(core_schema.metadata.create_all)  # the outbox is core's table
    relay = Relay(database, poll_interval=0.05)
    broker = KafkaBroker(KafkaOptions(bootstrap_servers=bootstrap, client_id="starling-faults-shop"))
    task = asyncio.create_task(relay.run(broker), name="faults-shop-relay")
    try:
        yield Shop(database, relay)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await database.dispose()


class Proxy:
    """`port` forwarded to the broker's own port; `cut()` ends every connection and stops listening,
    `restore()` listens again: what clients see of a broker stopped and started."""

    def __init__(self, port: int, target: int) -> None:
        self.port = port
        self.target = target
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.connections = 0

    async def restore(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def cut(self) -> None:
        if self.server is not None:
            self.server.close()
            for writer in list(self.writers):
                writer.transport.abort()  # a reset, as a dying broker's sockets give
            await self.server.wait_closed()
            self.server = None

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            broker_reader, broker_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            client_writer.transport.abort()
            client_writer.close()
            return
        self.writers |= {client_writer, broker_writer}
        try:
            await asyncio.gather(
                _pipe(client_reader, broker_writer),
                _pipe(broker_reader, client_writer),
                return_exceptions=True,
            )
        finally:
            for writer in (client_writer, broker_writer):
                self.writers.discard(writer)
                writer.transport.abort()
                writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(65536):
        writer.write(chunk)
        await writer.drain()
    writer.transport.abort()


async def broker_outage(options: Options, directory: Path) -> list[harness.Check]:
    orders = upstream_orders(0, options.orders, random.Random(13))  # noqa: S311 - reproducible, not a secret
    proxy_port = harness.free_port()
    bootstrap = f"127.0.0.1:{proxy_port}"
    consumer_states: list[str] = []
    # The broker tells its clients it is at the proxy's port, so every connection goes through the proxy.
    with kafka.start(advertised=proxy_port) as broker, quiet_clients():
        proxy = Proxy(proxy_port, broker.port)
        await proxy.restore()
        run = harness.run(directory, root=options.root, names=["reporting"], bootstrap=bootstrap)
        # started in a thread: the proxy the service reaches the broker through answers from this loop
        stack = await asyncio.to_thread(run.__enter__)
        url, service = stack.databases.urls["reporting"], stack.urls["reporting"]
        token = stack.environment.mint("faults-broker", REPORT_SCOPES)
        try:
            async with (
                shop_on(directory / "shop-outbox.db", bootstrap) as shop,
                harness.http_client(connections=8, seconds=CLIENT_TIMEOUT) as client,
            ):
                watch = asyncio.create_task(_watch(client, service, shop, consumer_states))
                feed = iter(orders)
                posted: list[int] = []
                writers = [
                    asyncio.create_task(_write(shop, feed, client, service, token, posted))
                    for _ in range(options.writers)
                ]
                await harness.wait_for(lambda: len(shop.placed) >= len(orders) // 3, within=60)
                stopped_at = len(shop.placed)
                await proxy.cut()
                handled_at_cut = (await _group(client, service)).get("handled", 0)
                await asyncio.sleep(options.outage)
                during = len(shop.placed) - stopped_at
                waiting = await shop.pending()  # events the relay could not deliver meanwhile
                handled_in_outage = (await _group(client, service)).get("handled", 0) - handled_at_cut
                connections = proxy.connections
                await proxy.restore()
                restarted = time.monotonic()
                await asyncio.gather(*writers)
                complete = await harness.wait_for(
                    lambda: _handled_all(client, service, len(orders)), within=120, interval=0.2
                )
                took = time.monotonic() - restarted
                await harness.wait_for(lambda: _settled(client, service, shop), within=30, interval=0.2)
                watch.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watch
                left = await shop.pending()
                reconnected = proxy.connections - connections
                group = await _group(client, service)
                api_units = await top_products(client, service, token)
        finally:
            await asyncio.to_thread(run.__exit__, None, None, None)
            await proxy.cut()

    stored_ids, stored_units = await stored_orders(url)
    published = set(shop.placed)
    return [
        harness.check(
            "the broker went away and came back with orders streaming",
            during > 0 and waiting > 0 and reconnected > 0,
            f"cut after {stopped_at} of {len(orders)} orders; in the {options.outage:.0f} s outage "
            f"{during} more were written, {waiting} waited in the outbox and reporting handled "
            f"{handled_in_outage} it had fetched before the cut; {reconnected} connections made again "
            f"once it was back (the shop's relay {' -> '.join(squeeze(shop.states)) or '(no sample)'}, "
            f"reporting's consumer {' -> '.join(squeeze(consumer_states)) or '(no sample)'}: "
            "the clients reconnect by themselves)",
        ),
        harness.check(
            "every order published to orders is stored once: none lost, none doubled",
            complete and stored_ids == published == {o["order_id"] for o in orders} and left == 0,
            f"{len(stored_ids)} stored of {len(published)} published ({sum(posted)} also posted over HTTP), "
            f"all handled {took:.1f} s after the broker came back; outbox left unsent: {left}",
        ),
        units_check("published", units(orders), stored_units, api_units),
        harness.check(
            "each event handled once, every copy skipped",
            group.get("handled") == len(orders) and group.get("dead_lettered") == 0,
            f"reporting handled {group.get('handled')} events, skipped {group.get('duplicates')} copies "
            f"(redelivered after the cut, or sent again by the relay), "
            f"dead-lettered {group.get('dead_lettered')}",
        ),
        logs.tracebacks_check(stack.logs),
    ]


async def _write(
    shop: Shop,
    feed: Any,
    client: httpx.AsyncClient,
    base_url: str,
    token: str,
    posted: list[int],
) -> None:
    """One writer: the next order into the shop's outbox, and every `POSTED_TOO`-th to reporting too."""
    for order in feed:
        await shop.place(order)
        if int(order["order_id"].rsplit("-", 1)[1]) % POSTED_TOO == 0:
            response = await client.post(
                f"{base_url}/api/v1/orders", json={"orders": [order]}, headers=bearer(token)
            )
            posted.append(1 if response.status_code == 202 else 0)
        await asyncio.sleep(PACE)


async def _watch(client: httpx.AsyncClient, base_url: str, shop: Shop, consumer: list[str]) -> None:
    """Sample the shop's relay and reporting's consumer group until cancelled."""
    while True:
        shop.states.append(shop.relay.status.state)
        state = (await _group(client, base_url)).get("state")
        if state is not None:
            consumer.append(state)
        await asyncio.sleep(0.1)


async def _group(client: httpx.AsyncClient, base_url: str) -> dict[str, Any]:
    """Reporting's consumer group as its `/health` reports it; nothing while it does not answer."""
    try:
        events = (await client.get(f"{base_url}/health")).json()["details"]["events"]
        group: dict[str, Any] = events["consumers"]["reporting"]
    except (httpx.HTTPError, KeyError, ValueError):
        return {}
    return group


async def _handled_all(client: httpx.AsyncClient, base_url: str, count: int) -> bool:
    return int((await _group(client, base_url)).get("handled", 0)) >= count


async def _settled(client: httpx.AsyncClient, base_url: str, shop: Shop) -> bool:
    """The shop's outbox sent and reporting's group with nothing left to fetch."""
    return await shop.pending() == 0 and (await _group(client, base_url)).get("lag") == 0
