"""The CI workflow and `nox --json -l` agree: every session nox runs is a job, every shard is there."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from starling_devtools.matrix import build, listed_sessions, main

SESSIONS: list[dict[str, Any]] = [
    {"session": "tests(core)", "name": "tests", "call_spec": {"package": "core"}},
    {"session": "tests(users)", "name": "tests", "call_spec": {"package": "users"}},
    {
        "session": "tests_postgres(users)",
        "name": "tests_postgres",
        "tags": ["postgres"],
        "call_spec": {"package": "users"},
    },
    {"session": "lint", "name": "lint", "call_spec": {}},
]


@pytest.fixture(scope="module")
def workflow(repo_root: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((repo_root / ".github/workflows/ci.yml").read_text())
    return loaded


@pytest.fixture(scope="module")
def nox_sessions(repo_root: Path) -> list[dict[str, Any]]:
    return listed_sessions(repo_root)


def workflow_matrix_args(workflow: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    env = workflow["env"]
    return env["PYTHONS"].split(), json.loads(env["SHARDS"])


def test_every_suite_runs_on_every_python_and_the_rest_once() -> None:
    jobs = build(SESSIONS, pythons=["3.11", "3.12"], shards={})

    assert Counter(job["session"] for job in jobs) == {
        "tests(core)": 2,
        "tests(users)": 2,
        "tests_postgres(users)": 2,
        "lint": 1,
    }
    lint = next(job for job in jobs if job["session"] == "lint")
    assert (lint["python"], lint["suite"], lint["args"]) == ("3.11", False, "")
    assert [job["postgres"] for job in jobs if job["session"] == "tests_postgres(users)"] == [True, True]


def test_a_sharded_package_gets_one_job_per_shard_on_both_databases() -> None:
    jobs = build(SESSIONS, pythons=["3.11"], shards={"users": 3})

    users = [job for job in jobs if "users" in job["session"]]
    assert [(job["session"], job["args"]) for job in users] == [
        ("tests(users)", "--splits 3 --group 1"),
        ("tests(users)", "--splits 3 --group 2"),
        ("tests(users)", "--splits 3 --group 3"),
        ("tests_postgres(users)", "--splits 3 --group 1"),
        ("tests_postgres(users)", "--splits 3 --group 2"),
        ("tests_postgres(users)", "--splits 3 --group 3"),
    ]
    assert next(job for job in jobs if job["session"] == "tests(core)")["args"] == ""
    # ids name JUnit files and artifacts: they must be unique and safe
    ids = [job["id"] for job in jobs]
    assert len(set(ids)) == len(ids)
    assert all(set(i) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") for i in ids)


@pytest.mark.parametrize(("pythons", "shards"), [([], {}), (["3.11"], {"users": 0})])
def test_a_matrix_without_python_or_with_no_shards_is_refused(
    pythons: list[str], shards: dict[str, int]
) -> None:
    with pytest.raises(ValueError, match="at least one"):
        build(SESSIONS, pythons=pythons, shards=shards)


def test_nox_lists_a_suite_per_member_on_both_databases(nox_sessions: list[dict[str, Any]]) -> None:
    names = {entry["session"] for entry in nox_sessions}

    for member in ("core", "testkit", "servers", "users", "agents", "reporting", "devtools"):
        assert f"tests({member})" in names
    for member in ("core", "users", "agents", "reporting"):
        assert f"tests_postgres({member})" in names
    assert {"lint", "typecheck"} <= names


def test_the_workflow_matrix_holds_every_session_nox_runs(
    nox_sessions: list[dict[str, Any]], workflow: dict[str, Any]
) -> None:
    pythons, shards = workflow_matrix_args(workflow)
    jobs = build(nox_sessions, pythons=pythons, shards=shards)

    assert {job["session"] for job in jobs} == {entry["session"] for entry in nox_sessions}
    for entry in nox_sessions:
        if entry["name"] not in ("tests", "tests_postgres"):
            continue
        count = shards.get(entry["call_spec"]["package"], 1)
        for python in pythons:
            groups = sorted(
                job["args"] for job in jobs if job["session"] == entry["session"] and job["python"] == python
            )
            expected = (
                sorted(f"--splits {count} --group {g}" for g in range(1, count + 1)) if count > 1 else [""]
            )
            assert groups == expected, entry["session"]


def test_the_workflow_runs_the_generated_matrix_through_nox(workflow: dict[str, Any]) -> None:
    jobs = workflow["jobs"]
    build_step = next(step for step in jobs["matrix"]["steps"] if step.get("id") == "build")

    assert "nox -s matrix" in build_step["run"]
    assert "--shards" in build_step["run"]
    assert "--github-output" in build_step["run"]
    assert jobs["session"]["strategy"]["matrix"] == "${{ fromJSON(needs.matrix.outputs.matrix) }}"
    commands = " ".join(step.get("run", "") for step in jobs["session"]["steps"])
    assert 'nox -s "$SESSION" -- $SHARD_ARGS --junitxml="$REPORT"' in commands
    suite_step = next(step for step in jobs["session"]["steps"] if "$SHARD_ARGS" in step.get("run", ""))
    assert suite_step["env"] == {
        "SESSION": "${{ matrix.session }}",
        "SHARD_ARGS": "${{ matrix.args }}",
        "REPORT": "junit/${{ matrix.id }}.xml",
    }
    assert jobs["summary"]["needs"] == "session"
    assert jobs["summary"]["if"] == "always()"


def test_every_sharded_package_is_a_member(
    nox_sessions: list[dict[str, Any]], workflow: dict[str, Any]
) -> None:
    _, shards = workflow_matrix_args(workflow)
    packages = {entry["call_spec"].get("package") for entry in nox_sessions}

    assert set(shards) <= packages


@pytest.mark.parametrize("name", ["ci.yml", "nightly.yml"])
def test_each_workflow_is_a_valid_github_workflow(repo_root: Path, name: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.github-workflows",
            str(repo_root / ".github/workflows" / name),
        ],
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_nightly_workflow_runs_soak_and_fuzz_long(repo_root: Path) -> None:
    nightly = yaml.safe_load((repo_root / ".github/workflows/nightly.yml").read_text())
    runs = nightly["jobs"]["long"]["strategy"]["matrix"]["include"]

    assert {run["session"] for run in runs} == {"soak", "fuzz"}
    assert "schedule" in nightly[True]  # YAML 1.1 reads the key `on` as True


def test_the_command_writes_the_matrix_for_github(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))

    assert (
        main(["--root", str(repo_root), "--python", "3.11", "--shards", '{"users": 2}', "--github-output"])
        == 0
    )

    printed = json.loads(capsys.readouterr().out)
    key, _, value = output.read_text().strip().partition("=")
    assert key == "matrix"
    assert json.loads(value) == printed
    assert sum(job["session"] == "tests(users)" for job in printed["include"]) == 2
