"""The fault run's own parts: the dropping upstream, the checks' arithmetic, the options."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import httpx
import pytest

from starling_devtools.faults.__main__ import parse_args
from starling_devtools.faults.agents import FakeLLM
from starling_devtools.faults.broker import Proxy
from starling_devtools.faults.common import squeeze
from starling_devtools.faults.database import PostgresControl
from starling_devtools.faults.upstream import (
    FakeUpstream,
    offset_of,
    serving,
    serving_in_thread,
    upstream_orders,
)
from starling_devtools.harness.answers import retry_later
from starling_servers.kafka import free_port


def test_squeeze_folds_repeats_so_a_health_history_reads_as_transitions() -> None:
    assert squeeze([200, 200, 503, 503, 503, 200]) == [200, 503, 200]
    assert squeeze([200, 503, 0, 503, 200]) == [200, 503, 0, 503, 200]
    assert squeeze([]) == []


def test_upstream_pages_follow_the_contract_to_a_null_cursor() -> None:
    upstream = FakeUpstream(upstream_orders(0, 5, random.Random(1)))

    first = upstream.page(None, 2)
    last = upstream.page("o-4", 2)

    assert [order["order_id"] for order in first["items"]] == ["up-00000", "up-00001"]
    assert first["next_cursor"] == "o-2"
    assert [order["order_id"] for order in last["items"]] == ["up-00004"]
    assert last["next_cursor"] is None


@pytest.mark.parametrize(("cursor", "offset"), [(None, 0), ("o-64", 64), ("garbage", 0), ("o-", 0)])
def test_a_cursor_is_an_offset_and_anything_else_starts_over(cursor: str | None, offset: int) -> None:
    assert offset_of(cursor) == offset


def test_every_third_request_is_dropped_alternating_the_two_ways() -> None:
    upstream = FakeUpstream([], drop_every=3)
    fates = []
    for _ in range(12):
        fates.append(upstream.fate())
        upstream.requests.append((0, fates[-1]))

    assert fates[2] == "dropped before answering"
    assert fates[5] == "dropped mid-body"
    assert fates.count("served") == 8
    assert fates.count("dropped before answering") == fates.count("dropped mid-body") == 2


async def test_the_fake_upstream_really_drops_connections_on_the_wire() -> None:
    upstream = FakeUpstream(upstream_orders(0, 10, random.Random(2)), drop_every=2)
    async with serving(upstream) as url, httpx.AsyncClient(base_url=url) as client:
        served = await client.get("/orders", params={"limit": 4})
        with pytest.raises(httpx.RemoteProtocolError):  # closed before answering
            await client.get("/orders", params={"cursor": "o-4", "limit": 4})
        again = await client.get("/orders", params={"cursor": "o-4", "limit": 4})
        with pytest.raises(httpx.RemoteProtocolError):  # closed half-way through the body
            await client.get("/orders", params={"cursor": "o-8", "limit": 4})

    assert served.json()["next_cursor"] == "o-4"
    assert [order["order_id"] for order in again.json()["items"]] == [f"up-0000{n}" for n in range(4, 8)]
    assert [fate for _, fate in upstream.requests] == [
        "served",
        "dropped before answering",
        "served",
        "dropped mid-body",
    ]
    assert [offset for offset, _ in upstream.requests] == [0, 4, 4, 8]


def test_an_upstream_in_a_thread_serves_a_blocking_caller_every_page() -> None:
    orders = upstream_orders(0, 5, random.Random(3))
    upstream = FakeUpstream(orders, drop_every=0)
    with serving_in_thread(upstream) as url, httpx.Client(base_url=url) as client:
        pages = [
            client.get("/orders", params={"cursor": f"o-{start}", "limit": 2}).json() for start in (0, 2, 4)
        ]

    assert [order for page in pages for order in page["items"]] == orders
    assert [page["next_cursor"] for page in pages] == ["o-2", "o-4", None]
    assert {fate for _, fate in upstream.requests} == {"served"}


def test_upstream_orders_are_reproducible_and_uniquely_named() -> None:
    first = upstream_orders(0, 20, random.Random(9))
    assert first == upstream_orders(0, 20, random.Random(9))
    assert len({order["order_id"] for order in first}) == 20
    assert upstream_orders(20, 1, random.Random(9))[0]["order_id"] == "up-00020"


def test_a_good_503_has_a_detail_and_retry_after() -> None:
    good = httpx.Response(503, json={"detail": "The database is unavailable"}, headers={"Retry-After": "1"})
    no_retry = httpx.Response(503, json={"detail": "The database is unavailable"})
    not_json = httpx.Response(503, text="Service Unavailable", headers={"Retry-After": "1"})

    assert retry_later(good)
    assert not retry_later(no_retry)
    assert not retry_later(not_json)


def test_the_cluster_port_is_read_from_its_url() -> None:
    control = PostgresControl(
        "postgresql+asyncpg://postgres@127.0.0.1:41669/postgres", Path("/x"), Path("/x.log")
    )
    assert control.port == 41669


def test_every_scenario_runs_unless_some_are_picked() -> None:
    assert parse_args([]).only == ("database", "agents", "processes", "upstream", "broker")
    assert parse_args(["--only", "agents", "--only", "upstream"]).only == ("agents", "upstream")
    with pytest.raises(SystemExit):
        parse_args(["--only", "network"])


async def test_the_fake_llm_answers_chat_completions_and_counts_calls_per_input() -> None:
    llm = FakeLLM()
    transport = httpx.ASGITransport(app=llm.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://llm") as client:
        for text in ("a", "b", "a"):
            body = {"model": "fake", "messages": [{"role": "user", "content": text}]}
            response = await client.post("/v1/chat/completions", json=body)
            assert response.json()["choices"][0]["message"]["content"] == f"answer to {text}"
    assert llm.calls == {"a": 2, "b": 1}


async def test_the_proxy_forwards_then_cuts_every_connection_and_refuses_until_restored() -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            writer.write(data)
            await writer.drain()
        writer.close()

    target = await asyncio.start_server(echo, "127.0.0.1", 0)
    proxy = Proxy(free_port(), target.sockets[0].getsockname()[1])
    try:
        await proxy.restore()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"ping")
        assert await reader.read(4) == b"ping"

        await proxy.cut()

        assert await reader.read(4) == b""  # the open connection is gone
        writer.close()
        with pytest.raises(ConnectionRefusedError):
            await asyncio.open_connection("127.0.0.1", proxy.port)  # and nobody listens
        await proxy.restore()
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"back")
        assert await reader.read(4) == b"back"
        assert proxy.connections == 2
        writer.close()
    finally:
        await proxy.cut()
        target.close()
        await target.wait_closed()
