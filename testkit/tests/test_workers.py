"""Under xdist every worker has its own database, with a name that repeats from run to run."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from .conftest import dedent

# What is proven here is the cluster a suite starts for itself, and the names it gives its databases.
pytestmark = pytest.mark.own_cluster


def record_urls(project: pytest.Pytester, report: Path) -> None:
    project.makepyfile(
        test_urls=dedent(
            f"""
            import json
            import pytest
            from sqlalchemy import text

            @pytest.mark.parametrize("n", range(8))
            async def test_record(n, db_url, db_session, worker_id):
                # The worker's database exists and carries the schema from db_metadata.
                assert (await db_session.execute(text("SELECT count(*) FROM notes"))).scalar() == 0
                with open({str(report)!r}, "a") as out:
                    out.write(json.dumps({{"worker": worker_id, "url": db_url}}) + "\\n")
            """
        )
    )


def test_two_workers_get_two_databases(project: pytest.Pytester, backend: str) -> None:
    report = project.path / "urls.jsonl"
    record_urls(project, report)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--db", backend)
    result.assert_outcomes(passed=8)
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    by_worker = {row["worker"]: make_url(row["url"]) for row in rows}
    assert set(by_worker) == {"gw0", "gw1"}
    assert all(make_url(row["url"]) == by_worker[row["worker"]] for row in rows)
    names = {worker: str(url.database) for worker, url in by_worker.items()}
    if backend == "sqlite":
        assert names["gw0"].endswith("starling_test_gw0.sqlite3")
        assert names["gw1"].endswith("starling_test_gw1.sqlite3")
    else:
        assert names == {"gw0": "starling_test_gw0", "gw1": "starling_test_gw1"}
        # One cluster for the run: both workers talk to the same server.
        assert by_worker["gw0"].port == by_worker["gw1"].port


def test_postgres_cluster_is_started_once_and_stopped(project: pytest.Pytester) -> None:
    report = project.path / "urls.jsonl"
    record_urls(project, report)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--db", "postgres")
    result.assert_outcomes(passed=8)
    ports = {make_url(json.loads(line)["url"]).port for line in report.read_text().splitlines()}
    assert len(ports) == 1
    [port] = ports
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", int(port or 0))) != 0, "the cluster is still listening"


def test_sqlite_databases_are_removed_unless_kept(project: pytest.Pytester) -> None:
    project.makepyfile(
        test_keep=dedent(
            """
            def test_record_path(db_url, db_engine):
                with open("db-path.txt", "w") as out:
                    out.write(db_url.split(":///", 1)[1])
            """
        )
    )
    project.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
    removed = Path((project.path / "db-path.txt").read_text())
    project.runpytest_subprocess("-p", "no:cacheprovider", "--keep-db").assert_outcomes(passed=1)
    kept = Path((project.path / "db-path.txt").read_text())
    assert not removed.exists()
    assert kept.exists()


def test_database_url_must_be_postgres(project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STARLING_TEST_DATABASE_URL", "sqlite+aiosqlite:///x.db")
    project.makepyfile(test_it=dedent("def test_it(db_url):\n    pass\n"))
    result = project.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*STARLING_TEST_DATABASE_URL must point at a PostgreSQL server*"])
