"""The bench's own logic: generated projects, parsing, the arithmetic, the table and JSON, its options."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from starling_devtools.bench import bare, inprocess, isolation, profile, projects, results, serving, wrk
from starling_devtools.bench.__main__ import parse_args
from starling_devtools.bench.isolation import Config
from starling_devtools.bench.projects import PytestRun
from starling_devtools.bench.results import (
    Figure,
    Report,
    Target,
    at_least,
    at_most,
    format_number,
    row,
    table,
)

# --- generated projects ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tests", "sizes"), [(500, [50] * 10), (2000, [50] * 40), (120, [50, 50, 20]), (7, [7])]
)
def test_tests_are_spread_over_modules_of_fifty(tests: int, sizes: list[int]) -> None:
    assert projects.module_sizes(tests) == sizes


def test_a_project_needs_a_test() -> None:
    with pytest.raises(ValueError, match="at least one test"):
        projects.module_sizes(0)


@pytest.mark.parametrize("kind", projects.LAYOUTS)
def test_a_generated_project_holds_the_asked_number_of_tests(tmp_path: Path, kind: str) -> None:
    directory = projects.generate(kind, tmp_path / kind, 120)

    assert sum(json.loads((directory / projects.SIZES).read_text()).values()) == 120
    assert sorted(path.name for path in directory.glob("test_*.py")) == [f"test_m00{i}.py" for i in range(3)]
    assert "[pytest]" in (directory / "pytest.ini").read_text()
    assert 'pytest_plugins = ["benchclock"]' in (directory / "conftest.py").read_text()


def test_each_kind_gets_its_own_conftest_and_tests(tmp_path: Path) -> None:
    made = {kind: projects.generate(kind, tmp_path / kind, 1) for kind in projects.LAYOUTS}

    kit = (made[projects.KIT] / "conftest.py").read_text()
    textbook = (made[projects.TEXTBOOK] / "conftest.py").read_text()
    assert "def app_factory" in kit
    assert 'join_transaction_mode="create_savepoint"' in textbook
    assert "starling_suite = true" in (made[projects.KIT] / "pytest.ini").read_text()
    assert "starling_suite" not in (made[projects.TEXTBOOK] / "pytest.ini").read_text()
    assert "db_session" not in (made[projects.FLOOR] / "test_m000.py").read_text()
    assert "select_from(Row)) == 1" in (made[projects.KIT] / "test_m000.py").read_text()
    assert (made[projects.DJANGO] / "benchapp" / "models.py").is_file()


def test_an_unknown_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown project kind"):
        projects.generate("django", tmp_path, 1)


@pytest.mark.parametrize("kind", [projects.FLOOR, projects.KIT, projects.TEXTBOOK])
def test_a_generated_project_runs_its_tests_on_the_stopwatch(tmp_path: Path, kind: str) -> None:
    directory = projects.generate(kind, tmp_path, 3)
    config = Config(kind, "sqlite", 1, 3)

    run = projects.run(directory, config.pytest_args(), expect=3, env=config.env(None))

    assert 0 < run.tests <= run.pytest < run.wall


def test_a_run_that_passes_fewer_tests_than_expected_fails(tmp_path: Path) -> None:
    directory = projects.generate(projects.FLOOR, tmp_path, 3)

    with pytest.raises(projects.PytestFailed, match="3 passed, 0 failed, expected 4 passed"):
        projects.run(directory, ["-p", "no:starling"], expect=4)


def test_pytest_runs_leave_out_the_fuzz_groups_plugins() -> None:
    command = projects.command(["-n", "2"], python="python")

    assert command[:3] == ["python", "-m", "pytest"]
    assert "no:schemathesis" in command
    assert command[-2:] == ["-n", "2"]


# --- arithmetic ----------------------------------------------------------------------------------


def test_overhead_per_test_is_the_median_of_paired_differences() -> None:
    runs, floor = [1.5, 1.7, 2.6], [0.5, 0.6, 0.7]  # differences 1.0, 1.1, 1.9

    assert results.overhead_per_test(runs, floor, 500) == pytest.approx(1.1 / 500)


def test_overhead_needs_one_floor_run_per_run() -> None:
    with pytest.raises(ValueError, match="as many runs"):
        results.overhead_per_test([1.0, 2.0], [0.5], 500)


@pytest.mark.parametrize(
    ("value", "reference", "expected"),
    [(3.0, 2.0, 1.5), (1.0, 0.0, None), (None, 2.0, None), (2.0, None, None)],
)
def test_ratio(value: float | None, reference: float | None, expected: float | None) -> None:
    assert results.ratio(value, reference) == expected


def test_median_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no median"):
        results.median([])


def test_rounds_alternate_their_order() -> None:
    assert list(results.alternating(["a", "b", "c"], 3)) == [
        (0, "a"), (0, "b"), (0, "c"), (1, "c"), (1, "b"), (1, "a"), (2, "a"), (2, "b"), (2, "c"),
    ]  # fmt: skip


def test_the_summary_counts_targets_met_missed_and_undecided() -> None:
    figures = [
        Figure("a", "x", 1.0, "s", target=Target("t", True)),
        Figure("a", "y", 1.0, "s", target=Target("t", None)),
        Figure("a", "z", 1.0, "s"),
    ]

    assert results.summary(figures) == {"met": 1, "missed": 0, "undecided": 1}


# --- the table and JSON --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.2134, "0.213"), (2.134, "2.13"), (21.34, "21.3"), (7362.4, "7,362"), (-1.5, "-1.50")],
)
def test_numbers_keep_three_significant_figures(value: float, text: str) -> None:
    assert format_number(value) == text


def test_ratios_read_as_ratios() -> None:
    assert row(Figure("isolation", "growth", 1.04, "x"))[2] == "1.04x"


def test_targets_are_met_missed_or_undecided() -> None:
    assert at_most(2.9, 3.0, " ms").met is True
    assert at_most(3.1, 3.0, " ms").met is False
    assert at_least(None, 1.6, "x").met is None
    assert at_least(1.7, 1.6, "x").text == ">= 1.60x"


def test_a_row_shows_value_reference_ratio_target_and_verdict() -> None:
    figure = Figure(
        "requests", "kit", 1.8, "ms", reference="bare", reference_value=1.2, target=Target("<= 2x", True)
    )

    assert row(figure) == ["requests", "kit", "1.80 ms", "bare: 1.20 ms", "1.50x", "<= 2x", "yes"]


def test_a_missing_value_shows_why() -> None:
    figure = Figure("serving", "services under wrk", None, "", note="unavailable, skipped: no wrk")

    assert row(figure)[2:] == ["unavailable, skipped: no wrk", "-", "-", "-", "-"]


def test_a_missed_target_stands_out() -> None:
    figure = Figure("serving", "2 processes", 900.0, "req/s", target=Target(">= 1.6x", False))

    assert row(figure)[-1] == "NO"


def test_the_table_is_aligned_markdown() -> None:
    figures = [Figure("a", "short", 1.0, "s"), Figure("b", "a much longer figure name", 1234.5, "req/s")]

    lines = table(figures).splitlines()

    assert len(lines) == 4
    assert lines[0].startswith("| part")
    assert set(lines[1]) <= {"|", "-", " "}
    assert len({len(line) for line in lines}) == 1


def test_the_json_holds_every_figure_with_its_ratio(tmp_path: Path) -> None:
    report = Report(meta={"commit": "abc"}, measurements={"isolation": {"runs": [1.0]}})
    report.add(Figure("requests", "kit", 3.0, "ms", reference_value=2.0, target=Target("<= 2x", True)))
    path = tmp_path / ".bench" / "results.json"

    report.write_json(path)

    data = json.loads(path.read_text())
    assert data["meta"] == {"commit": "abc"}
    assert data["figures"][0]["ratio"] == 1.5
    assert data["figures"][0]["target"] == {"text": "<= 2x", "met": True}
    assert data["measurements"]["isolation"] == {"runs": [1.0]}


# --- wrk -----------------------------------------------------------------------------------------


def test_the_scripts_summary_is_read_from_wrks_last_line() -> None:
    output = """Running 10s test @ http://127.0.0.1:19101/users/me
  73620 requests in 10.00s, 10.00MB read
Requests/sec:   7362.00

{"requests": 73620, "seconds": 10.0, "p50": 0.00065, "p99": 0.0118, "non_2xx": 40,
 "socket_errors": {"connect": 0, "read": 12, "write": 1, "timeout": 3}}
""".replace('\n "socket', ' "socket')

    result = wrk.parse(output)

    assert result.requests_per_second == 7362.0
    assert (result.p50, result.p99) == (0.00065, 0.0118)
    assert result.errors == 40 + 12 + 1 + 3


def test_something_else_than_a_summary_is_refused() -> None:
    with pytest.raises(ValueError, match="no summary"):
        wrk.parse("unable to connect to 127.0.0.1:19101 Connection refused\n")


def test_the_wrk_command_carries_the_token_the_timeout_and_the_script(tmp_path: Path) -> None:
    script = wrk.script(tmp_path)

    command = wrk.command("http://h/x", script, duration=10, headers={"Authorization": "Bearer t"},
                          timeout=10, connections=50)  # fmt: skip

    assert command[1:] == [
        "-t2", "-c50", "-d10s", "--timeout", "10s", "-H", "Authorization: Bearer t", "-s", str(script), "http://h/x"
    ]  # fmt: skip
    assert "done = function(summary, latency, requests)" in script.read_text()


def test_a_write_run_posts_a_body_made_unique_per_request_by_its_script(tmp_path: Path) -> None:
    text = wrk.script(tmp_path, '{"email":"w-{{n}}@example.com"}').read_text()

    assert 'BODY = [==[{"email":"w-{{n}}@example.com"}]==]' in text
    assert 'wrk.format("POST", nil, nil, string.gsub(BODY, "{{n}}", unique))' in text
    assert "done = function" in text


def test_a_body_that_would_end_the_scripts_string_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot hold"):
        wrk.script(tmp_path, '{"x":"]==]"}')


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_a_real_wrk_run_reports_through_the_script(tmp_path: Path) -> None:
    port = free_port()
    argv = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"]
    process = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not listening(port):
            assert time.monotonic() < deadline, "the HTTP server never listened"
            time.sleep(0.05)

        result = wrk.run(
            f"http://127.0.0.1:{port}/", wrk.script(tmp_path), duration=1, headers={}, connections=2
        )
    finally:
        process.kill()
        process.wait()

    assert result.requests > 0
    assert result.errors == 0
    assert 0 < result.p50 <= result.p99


# --- serving -------------------------------------------------------------------------------------


def test_an_epolls_watched_descriptors_are_read_from_fdinfo() -> None:
    info = "pos:\t0\nflags:\t02000002\ntfd:        7 events:       19 data: 7\ntfd:       12 events: 19\n"

    assert serving.parse_epoll_fdinfo(info) == {7, 12}


ASYNCIO_SERVER = """
import asyncio, sys
async def main():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", int(sys.argv[1]))
    async with server:
        await server.serve_forever()
asyncio.run(main())
"""

BLOCKING_LISTENER = """
import socket, sys, time
sock = socket.socket()
sock.bind(("127.0.0.1", int(sys.argv[1])))
sock.listen()
print("listening", flush=True)
sys.stdin.read()
"""


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_a_process_whose_event_loop_watches_the_port_is_accepting() -> None:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", ASYNCIO_SERVER, str(port)])
    try:
        deadline = time.monotonic() + 20
        while serving.accepting(process.pid, port) < 1:
            assert process.poll() is None
            assert time.monotonic() < deadline, "the asyncio server never showed as accepting"
            time.sleep(0.05)
        assert serving.accepting(process.pid, port) == 1
    finally:
        process.kill()
        process.wait()


def test_a_listening_socket_no_event_loop_watches_is_not_accepting() -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", BLOCKING_LISTENER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == b"listening\n"

        assert serving.accepting(process.pid, port) == 0
    finally:
        process.kill()
        process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                stream.close()


def wrk_result(rate: float, errors: int = 0) -> wrk.WrkResult:
    return wrk.WrkResult(
        requests=int(rate * 10), seconds=10.0, p50=0.01, p99=0.05, non_2xx=errors,
        socket_errors={"connect": 0, "read": 0, "write": 0, "timeout": 0},
    )  # fmt: skip


def measured(server: str, rate: float, *, round_index: int = 0, errors: int = 0, kind: str = "read",
             cpu: float = 0.0) -> serving.Measured:  # fmt: skip
    return serving.Measured(
        "sqlite", "users", kind, server, round_index, wrk_result(rate, errors), cpu * rate * 10 / 1000
    )


def serving_figures(*runs: serving.Measured) -> dict[str, Figure]:
    return {figure.name.rsplit(": ", 1)[1]: figure for figure in serving.figures(runs)}


ONE = serving.ONE.key


def test_a_service_is_set_against_its_bare_app_on_the_median_of_its_rounds() -> None:
    figures = serving_figures(
        measured(serving.BARE, 1000, cpu=1.0), measured(serving.BARE, 800, round_index=1, cpu=1.2),
        measured(ONE, 700, cpu=1.5), measured(ONE, 500, round_index=1, cpu=1.7),
    )  # fmt: skip

    figure = figures["1 process, against bare Starlette"]
    assert (figure.value, figure.reference_value) == (600, 900)
    assert figure.target == Target(">= 0.7x, 0 errors", False)
    assert figure.detail.startswith("CPU per request 0.69x of bare's")
    assert "rounds 700/500" in figure.detail


def test_two_processes_are_compared_with_one() -> None:
    figures = serving_figures(
        measured(ONE, 1000), measured(serving.SERVE.key, 1700), measured(serving.GRANIAN.key, 1500),
        measured(serving.GUNICORN.key, 2000, errors=1),
    )  # fmt: skip

    assert figures[serving.SERVE.label].ratio == pytest.approx(1.7)
    assert figures[serving.SERVE.label].target == Target(">= 1.6x, 0 errors", True)
    assert figures[serving.GRANIAN.label].target == Target(">= 1.6x, 0 errors", False)
    assert figures[serving.GUNICORN.label].target == Target(">= 1.6x, 0 errors", False)


def test_a_write_path_is_shown_beside_its_bare_app_and_must_have_no_errors() -> None:
    clean = serving_figures(measured(serving.BARE, 50, kind="write"), measured(ONE, 40, kind="write"))
    failing = serving_figures(
        measured(serving.BARE, 50, kind="write"), measured(ONE, 40, kind="write", errors=2)
    )

    assert clean["1 process, against bare Starlette"].ratio == pytest.approx(0.8)
    assert clean["1 process, against bare Starlette"].target == Target("0 errors", True)
    assert failing["1 process, against bare Starlette"].target == Target("0 errors", False)


def test_every_server_serves_the_app_on_the_port_given() -> None:
    for server in serving.SERVERS.values():
        argv = server.argv("starling_devtools.bench.bare:users", 19999)
        assert "starling_devtools.bench.bare:users" in argv, server.key
        assert "19999" in " ".join(argv), server.key
    # the standard servers keep core's protections: a deadline on request heads, a connection cap
    assert "--http1-header-read-timeout" in serving.GRANIAN.argv("a:b", 1)
    assert serving.WORKER_CLASS in serving.GUNICORN.argv("a:b", 1)


def test_the_orders_batch_is_ten_orders_whose_ids_the_script_makes_unique() -> None:
    body = json.loads(serving.ORDERS_BATCH.replace("{{n}}", "r-1-7"))

    assert [order["order_id"] for order in body["orders"]] == [f"w-r-1-7-{k}" for k in range(10)]


# --- profile -------------------------------------------------------------------------------------


MAIN = "<module> (uvicorn/__main__.py:4)"
COLLAPSED = "\n".join(
    [
        f"{MAIN};run (asyncio/runners.py:118);decode (jwt/api_jwt.py:200) 7",
        f"{MAIN};send_with_headers (starling_core/ratelimit.py:240);send (uvicorn/protocols/http/h11.py:4) 5",
        f"{MAIN};hit (starling_core/ratelimit.py:150) 2",
        "_bootstrap (threading.py:1002);_bootstrap_inner (threading.py:1045);run (aiosqlite/core.py:60) 9",
        f"{MAIN};_run_once (asyncio/base_events.py:1900) 1",
        # py-spy --subprocesses puts the processes first
        'process 5:"python -m serve";_bootstrap (threading.py:1002);run (aiosqlite/core.py:60) 1',
    ]
)


def test_a_sample_is_charged_to_the_innermost_layer_it_ran_in() -> None:
    samples = profile.classify(COLLAPSED)

    assert samples["auth (JWT)"] == 7
    assert samples["server and socket I/O (uvicorn, h11, asyncio)"] == 5 + 1  # the send, and the loop itself
    assert samples["rate limit"] == 2
    assert samples[profile.DRIVER_THREAD] == 9 + 1


def test_a_layers_cost_is_its_share_of_the_samples_times_the_cpu_per_request() -> None:
    item = profile.Profiled("sqlite", "users", "service", profile.classify(COLLAPSED), 500.0, 2.4, "x")

    assert item.cost_ms("auth (JWT)") == pytest.approx(2.4 * 7 / 25)
    assert item.cost_ms("metrics") == 0.0


def test_the_raw_runs_of_serving_and_profile_go_into_the_json(tmp_path: Path) -> None:
    item = profile.Profiled("sqlite", "users", "service", profile.classify(COLLAPSED), 500.0, 2.4, "x")
    report = Report(measurements={"profile": profile.measurements([item])})
    report.measurements["serving"] = serving.measurements([measured(ONE, 700)])

    report.write_json(tmp_path / "results.json")

    data = json.loads((tmp_path / "results.json").read_text())["measurements"]
    assert data["profile"][0]["samples"]["auth (JWT)"] == 7
    assert data["serving"][0]["requests_per_second"] == 700


# --- isolation -----------------------------------------------------------------------------------


def test_the_plan_runs_floor_kit_and_recipe_in_both_modes_at_both_sizes_and_the_peer_serially() -> None:
    configs = isolation.plan(500, growth=2000, databases=["sqlite", "postgres"], peer=True)

    keys = [config.key for config in configs]
    assert len(keys) == len(set(keys)) == 2 * 2 * (1 + 2 * 2) + 2
    assert {"textbook-sqlite--n 2-500", "kit-postgres--n 2-2000", "floor-none-serial-2000"} <= set(keys)
    assert keys[-2:] == ["pytest-django-sqlite-serial-500", "pytest-django-postgres-serial-500"]


def test_without_growth_or_postgres_or_peer_the_plan_is_smaller() -> None:
    configs = isolation.plan(50, growth=0, databases=["sqlite"], peer=False)

    assert [config.key for config in configs] == [
        "floor-none-serial-50", "kit-sqlite-serial-50", "textbook-sqlite-serial-50", "floor-none--n 2-50",
        "kit-sqlite--n 2-50", "textbook-sqlite--n 2-50",
    ]  # fmt: skip


def test_only_the_kit_runs_with_its_plugin() -> None:
    assert Config(projects.KIT, "postgres", 2, 500).pytest_args() == ["-n", "2", "--db", "postgres"]
    assert Config(projects.FLOOR, None, 1, 500).pytest_args() == ["-p", "no:starling"]
    assert Config(projects.TEXTBOOK, "sqlite", 1, 500).pytest_args() == ["-p", "no:starling"]
    assert Config(projects.DJANGO, "sqlite", 1, 500).pytest_args() == []


def test_postgres_runs_get_the_server_and_sqlite_runs_lose_it() -> None:
    assert Config(projects.KIT, "postgres", 1, 5).env("pg://x") == {"STARLING_TEST_DATABASE_URL": "pg://x"}
    assert Config(projects.KIT, "sqlite", 1, 5).env("pg://x") == {"STARLING_TEST_DATABASE_URL": None}
    with pytest.raises(ValueError, match="needs a PostgreSQL server"):
        Config(projects.TEXTBOOK, "postgres", 1, 5).env(None)


def fake_runs(configs: list[Config], tests_seconds: dict[str, list[float]]) -> isolation.Runs:
    return {
        config.key: [PytestRun(tests=s, pytest=s + 1, wall=s + 3) for s in tests_seconds[config.key]]
        for config in configs
    }


def test_isolation_figures_are_the_kits_cost_over_the_floor_against_the_recipe() -> None:
    configs = isolation.plan(500, growth=2000, databases=["sqlite"], peer=False)
    runs = fake_runs(
        configs,
        {
            "floor-none-serial-500": [0.5, 0.6, 0.5],
            "kit-sqlite-serial-500": [1.5, 1.6, 1.6],  # 1.0, 1.0, 1.1 over the floor: 2 ms a test
            "textbook-sqlite-serial-500": [5.5, 5.6, 5.5],  # 10 ms a test
            "floor-none--n 2-500": [0.8, 0.8, 0.8],
            "kit-sqlite--n 2-500": [1.3, 1.3, 1.3],  # 1 ms a test
            "textbook-sqlite--n 2-500": [2.3, 2.3, 2.3],  # 3 ms a test
            "floor-none-serial-2000": [2.0, 2.0, 2.0],
            "kit-sqlite-serial-2000": [6.4, 6.4, 6.4],  # 2.2 ms a test
            "textbook-sqlite-serial-2000": [22.0, 22.0, 22.0],  # 10 ms a test
            "floor-none--n 2-2000": [3.2, 3.2, 3.2],
            "kit-sqlite--n 2-2000": [5.2, 5.2, 5.2],  # 1 ms a test
            "textbook-sqlite--n 2-2000": [9.2, 9.2, 9.2],  # 3 ms a test
        },
    )

    figures = {figure.name: figure for figure in isolation.figures(configs, runs)}

    serial = figures["kit on SQLite, serial: cost per test over the floor"]
    assert serial.value == pytest.approx(2.0)
    assert serial.reference_value == pytest.approx(10.0)
    assert serial.target == Target("<= 1.50 ms/test", False)
    assert figures["kit on SQLite, serial: times cheaper than the textbook recipe"].value == pytest.approx(
        5.0
    )
    parallel = figures["kit on SQLite, -n 2: cost per test over the floor"]
    assert parallel.value == pytest.approx(1.0)
    assert (parallel.reference, parallel.target) == ("kit, serial", Target("<= 1.50 ms/test", True))
    ahead = figures["kit on SQLite, -n 2, 2,000 tests: times cheaper than the textbook recipe"]
    assert ahead.value == pytest.approx(3.0)
    assert ahead.target == Target(">= 2.00x", True)
    growth = figures["growth, kit on SQLite: cost per test over the floor, 2,000 over 500 tests, serial"]
    assert growth.value == pytest.approx(1.1)
    floor_growth = figures["growth, floor: time per test, 2,000 over 500 tests, serial"]
    assert floor_growth.value == pytest.approx(1.0)


def test_where_an_isolated_tests_time_goes_is_printed_beside_the_floors(tmp_path: Path) -> None:
    printed: list[str] = []

    found = isolation.profile(3, "sqlite", None, tmp_path, printed.append)

    assert found[projects.KIT]["tests"] == found[projects.FLOOR]["tests"] == 3
    assert found[projects.KIT]["median_us"]["setup: db_connection setup: checkout + BEGIN"] > 0
    [table] = printed
    assert "  db_connection teardown: ROLLBACK, close, check-in" in table
    assert "  call statement: INSERT" in table
    assert table.splitlines()[-1].startswith("total (the three phases)")


def test_whole_process_figures_set_the_kit_against_pytest_django() -> None:
    configs = isolation.whole_plan(500, ["sqlite"])
    runs = fake_runs(
        configs,
        {
            "kit-sqlite-serial-500": [2.0, 2.1, 2.2],  # walls 5.0, 5.1, 5.2
            "pytest-django-sqlite-serial-500": [9.1, 9.2, 9.3],  # walls 12.1 ... 12.3
            "kit-sqlite-serial-1": [0.0, 0.0, 0.0],
            "pytest-django-sqlite-serial-1": [-1.0, -1.0, -1.0],
        },
    )

    many, one = isolation.whole_figures(configs, runs)

    assert many.value == pytest.approx(12.2 / 5.1)
    assert many.target == Target(">= 2.00x", True)
    assert (one.value, one.reference_value) == (3.0, 2.0)
    assert one.target is not None
    assert one.target.met is False


# --- requests ------------------------------------------------------------------------------------


def test_the_kits_request_is_compared_with_the_bare_read() -> None:
    measured = {
        "sqlite": {
            "batch": 200,
            "seconds": {"kit_users_me": [0.003, 0.002, 0.0021], "bare_read": [0.001, 0.0012, 0.0011],
                        "bare_health": [0.0002, 0.0002, 0.0003]},
        }
    }  # fmt: skip

    kit, health = inprocess.figures(measured)

    assert kit.value == pytest.approx(2.1)
    assert kit.reference_value == pytest.approx(1.1)
    assert kit.target == Target("<= 2.00x", True)
    assert health.value == pytest.approx(0.2)
    assert health.reference_value == inprocess.ANCHOR_HEALTH_MS


# --- options -------------------------------------------------------------------------------------


def test_by_default_every_part_runs_on_both_databases() -> None:
    options = parse_args([])

    assert options.only == ("isolation", "requests", "serving", "profile", "events")
    assert options.databases == ("sqlite", "postgres")
    assert (options.serving_rounds, options.duration) == (2, 5.0)
    assert options.json == Path(".bench/results.json")
    assert (options.tests, options.growth, options.repeat) == (500, 2000, 3)


def test_parts_run_in_their_order_whatever_the_order_asked() -> None:
    assert parse_args(["--only", "serving,isolation"]).only == ("isolation", "serving")


@pytest.mark.parametrize(
    "argv",
    [["--only", "speed"], ["--only", ""], ["--tests", "0"], ["--tests", "500", "--growth", "400"],
     ["--servers", "uvicorn-1"], ["--duration", "0"]],
)  # fmt: skip
def test_bad_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)

    assert exited.value.code == 2


def test_a_serving_run_can_be_narrowed_to_services_and_servers() -> None:
    options = parse_args(["--services", "users", "--servers", "granian-2", "--databases", "sqlite"])

    assert options.services == ("users",)
    assert options.servers == ("granian-2",)
    assert options.databases == ("sqlite",)


# --- bare references -----------------------------------------------------------------------------


async def test_the_bare_apps_read_and_write_the_services_tables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from sqlalchemy.ext.asyncio import create_async_engine

    url = f"sqlite+aiosqlite:///{tmp_path}/bare.db"
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(bare._metadata.create_all)
    await engine.dispose()
    monkeypatch.setenv(bare.DATABASE_VARIABLE, url)
    orders = json.loads(serving.ORDERS_BATCH.replace("{{n}}", "t"))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=bare.reporting), base_url="http://t"
    ) as client:
        ingested = await client.post("/api/v1/orders", json=orders)
        top = await client.get("/top-products?count=2")

    assert ingested.json() == {"accepted": 10, "duplicates": 0}
    assert [product["rank"] for product in top.json()] == [1, 2]
    assert bare.summarize(serving.TEXT_2KB, 2).count("Sentence") == 2
