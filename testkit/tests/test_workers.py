"""Under xdist every worker has its own database, with a name that repeats from run to run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import dedent


def test_two_workers_get_two_database_files(project: pytest.Pytester) -> None:
    report = project.path / "urls.jsonl"
    project.makepyfile(
        test_urls=dedent(
            f"""
            import json, os
            import pytest

            @pytest.mark.parametrize("n", range(8))
            async def test_record(n, db_url, db_engine, worker_id):
                assert os.path.exists(db_url.split(":///", 1)[1])
                with open({str(report)!r}, "a") as out:
                    out.write(json.dumps({{"worker": worker_id, "url": db_url}}) + "\\n")
            """
        )
    )
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "loadgroup")
    result.assert_outcomes(passed=8)
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    by_worker = {row["worker"]: row["url"] for row in rows}
    assert set(by_worker) == {"gw0", "gw1"}
    assert by_worker["gw0"] != by_worker["gw1"]
    assert by_worker["gw0"].endswith("starling_test_gw0.sqlite3")
    assert by_worker["gw1"].endswith("starling_test_gw1.sqlite3")
    assert all(row["url"] == by_worker[row["worker"]] for row in rows)


def test_databases_are_removed_unless_kept(project: pytest.Pytester) -> None:
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
