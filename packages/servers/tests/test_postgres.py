"""The PostgreSQL starter: one cluster per run directory, whichever process asks first, answering SQL on
loopback; stopped and removed (or kept) when asked. Needs PostgreSQL's server binaries."""

from __future__ import annotations

import glob
import json
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import pytest

from starling_servers import postgres

# Two processes ask for the same run directory's cluster at once: the file lock lets one start it.
ASK = (
    "import sys, pathlib; from starling_servers import postgres; "
    "print(postgres.ensure_cluster(pathlib.Path(sys.argv[1])).url)"
)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # not tmp_path: as root the cluster runs as an unprivileged user, who cannot reach pytest's private
    # temporary folders; a run directory from mkdtemp is what the kit and the tools hand in
    made = Path(tempfile.mkdtemp(prefix="starling-servers-test-"))
    try:
        yield made
    finally:
        postgres.stop_cluster(made)
        shutil.rmtree(made, ignore_errors=True)


def listening(url: str) -> bool:
    parsed = urlsplit(url)
    with socket.socket() as probe:
        return probe.connect_ex((str(parsed.hostname), int(parsed.port or 0))) == 0


async def test_a_cluster_answers_sql_and_every_caller_of_its_directory_shares_it(run_dir: Path) -> None:
    cluster = postgres.ensure_cluster(run_dir)
    assert urlsplit(cluster.url).hostname == "127.0.0.1"
    connection = await asyncpg.connect(cluster.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        assert await connection.fetchval("SHOW fsync") == "off"  # durability is not worth paying for here
    finally:
        await connection.close()
    assert postgres.ensure_cluster(run_dir) == cluster
    assert json.loads((run_dir / postgres.STATE_FILE).read_text())["url"] == cluster.url


def test_processes_asking_at_once_get_one_cluster(run_dir: Path) -> None:
    asking = [
        subprocess.Popen([sys.executable, "-c", ASK, str(run_dir)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    urls = {process.communicate(timeout=120)[0].strip() for process in asking}
    assert all(process.returncode == 0 for process in asking)
    assert len(urls) == 1
    [url] = urls
    assert listening(url)


def test_stopping_removes_the_cluster_and_a_second_stop_finds_none(run_dir: Path) -> None:
    cluster = postgres.ensure_cluster(run_dir)
    assert postgres.stop_cluster(run_dir) is True
    assert not listening(cluster.url)
    assert not cluster.data_dir.exists()
    assert not (run_dir / postgres.STATE_FILE).exists()
    assert postgres.stop_cluster(run_dir) is False


def test_stopping_can_keep_the_data_for_a_post_mortem(run_dir: Path) -> None:
    cluster = postgres.ensure_cluster(run_dir)
    assert postgres.stop_cluster(run_dir, keep_data=True) is True
    assert not listening(cluster.url)
    assert (cluster.data_dir / "PG_VERSION").is_file()


def test_a_machine_without_the_server_binaries_is_told_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    monkeypatch.setattr(glob, "glob", lambda pattern: [])  # no Debian /usr/lib/postgresql/<version>/bin
    with pytest.raises(postgres.PostgresUnavailable) as refused:
        postgres.find_binaries()
    assert "initdb and pg_ctl" in str(refused.value)
    assert "\n" not in str(refused.value)
