"""The Kafka-protocol broker starter: started from the pinned wheel, ready when it answers with its own
cluster id, stopped with SIGINT, deaf to the caller's environment and `.env` files."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

import pytest

from starling_servers import kafka


def test_a_started_broker_answers_with_its_own_cluster_id_and_stops_on_sigint() -> None:
    broker = kafka.start()
    try:
        assert kafka.cluster_id(broker.bootstrap) == broker.cluster_id
        assert broker.bootstrap.startswith("127.0.0.1:")
    finally:
        broker.stop()
    assert broker.process.returncode == 0  # it took SIGINT and shut down, not SIGKILL
    assert not broker.directory.exists()
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection(("127.0.0.1", broker.port), timeout=1),
    ):
        pass


def test_a_broker_tells_its_clients_the_advertised_port() -> None:
    proxy_port = kafka.free_port()
    # A Metadata (v2) request for every topic: api key 3, version 2, correlation id 1, client id "t".
    body = struct.pack(">hhih", 3, 2, 1, 1) + b"t" + struct.pack(">i", -1)
    with (
        kafka.start(advertised=proxy_port) as broker,
        socket.create_connection(("127.0.0.1", broker.port)) as kafka_socket,
    ):
        kafka_socket.sendall(struct.pack(">i", len(body)) + body)
        reply = kafka_socket.recv(65536)
    # size, correlation id, broker count, node id; then the first broker's host and port
    (host_length,) = struct.unpack_from(">h", reply, 16)
    (port,) = struct.unpack_from(">i", reply, 18 + host_length)
    assert (reply[18 : 18 + host_length], port) == (b"127.0.0.1", proxy_port)
    assert broker.port != proxy_port


def test_a_port_another_broker_holds_fails_with_the_reason() -> None:
    with kafka.start() as first, pytest.raises(kafka.BrokerUnavailable) as refused:
        kafka.start(first.port, timeout=5)
    # the second broker exits 0 on a taken port: the cluster id is what tells them apart
    assert "did not start" in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_broker_ignores_the_callers_environment_and_dotenv_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".env").write_text("LISTENER_URL=tcp://127.0.0.1:1\nCLUSTER_ID=not-ours\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CLUSTER_ID", "not-ours")
    monkeypatch.setenv("STORAGE_ENGINE", "s3://nowhere/")
    with kafka.start() as broker:
        assert kafka.cluster_id(broker.bootstrap) == broker.cluster_id
