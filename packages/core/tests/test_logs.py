"""A service process's logging: JSON in production, text in development, one handler for every logger."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import sys
from collections.abc import Iterator

import pytest

from starling_core import logs
from starling_core.requestid import request_id_var

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1In0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, "text"),
        ({"STARLING_ENV": "development"}, "text"),
        ({"STARLING_ENV": "production"}, "json"),
        ({"STARLING_ENV": "production", "STARLING_LOG_FORMAT": "text"}, "text"),
        ({"STARLING_LOG_FORMAT": "JSON"}, "json"),
    ],
)
def test_the_format_is_json_in_production_unless_said_otherwise(
    environ: dict[str, str], expected: str
) -> None:
    assert logs.format_from(environ) == expected


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="STARLING_LOG_FORMAT"):
        logs.format_from({"STARLING_LOG_FORMAT": "xml"})


@pytest.fixture
def isolated_logging() -> Iterator[None]:
    """The process's logging as it was, whatever a test configures (pytest's own handlers included)."""
    root = logging.getLogger()
    saved_root = (root.handlers[:], root.level)
    names = ["uvicorn", "uvicorn.error", "uvicorn.access", logs.ACCESS_LOGGER, "starling.svc", "aiokafka"]
    saved = {
        name: (lg.handlers[:], lg.level, lg.propagate) for name in names if (lg := logging.getLogger(name))
    }
    for name in names:
        logging.getLogger(name).setLevel(logging.NOTSET)  # a server earlier in the run may have set one
    try:
        yield
    finally:
        root.handlers[:], root.level = saved_root
        for name, (handlers, level, propagate) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def capture(log_format: logs.LogFormat, *, access_log: bool = True) -> io.StringIO:
    """Configure as a service process is, writing to a string rather than stderr."""
    stream = io.StringIO()
    config = logs.logging_config(log_format=log_format, level="INFO", access_log=access_log)
    config["handlers"]["stderr"]["stream"] = stream
    logging.config.dictConfig(config)
    return stream


@pytest.mark.usefixtures("isolated_logging")
def test_json_lines_carry_the_request_id_the_extras_and_no_secret() -> None:
    stream = capture("json")
    token = request_id_var.set("req-123")
    try:
        logging.getLogger("starling.svc").info("created the user %s", "u-1", extra={"user_id": "u-1"})
        logging.getLogger(logs.ACCESS_LOGGER).info("GET /x?token=%s 200", JWT)
    finally:
        request_id_var.reset(token)

    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert (first["level"], first["logger"]) == ("INFO", "starling.svc")
    assert first["message"] == "created the user u-1"
    assert (first["request_id"], first["user_id"]) == ("req-123", "u-1")
    assert first["time"].endswith("+00:00")
    assert JWT not in second["message"]


@pytest.mark.usefixtures("isolated_logging")
def test_a_traceback_is_one_field_of_one_json_line() -> None:
    stream = capture("json")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("starling.svc").exception("failed")

    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "RuntimeError: boom" in json.loads(lines[0])["exception"]


@pytest.mark.usefixtures("isolated_logging")
def test_text_lines_are_readable_and_the_services_info_lines_are_kept() -> None:
    stream = capture("text")

    logging.getLogger("starling.svc").info("extracted %d orders", 3)
    logging.getLogger("uvicorn.error").info("Application startup complete.")
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /x?token=%s HTTP/1.1" 200', JWT)
    logging.getLogger("aiokafka.consumer.group_coordinator").info("Joined group 'reporting' (generation 1)")
    logging.getLogger("aiokafka.consumer.group_coordinator").warning("Heartbeat failed: the group rebalances")

    lines = stream.getvalue().splitlines()
    # uvicorn's own access log is off (core's names routes, not raw paths); aiokafka says only what is wrong
    assert len(lines) == 3
    assert lines[0].endswith("INFO    starling.svc [-] extracted 3 orders")
    assert "uvicorn.error" in lines[1]
    assert lines[2].endswith("Heartbeat failed: the group rebalances")


@pytest.mark.usefixtures("isolated_logging")
def test_without_the_access_log_only_its_warnings_remain() -> None:
    stream = capture("text", access_log=False)

    logging.getLogger(logs.ACCESS_LOGGER).info("GET / 200")
    logging.getLogger("starling.svc").info("kept")

    assert stream.getvalue().count("\n") == 1


@pytest.mark.usefixtures("isolated_logging")
def test_configure_if_unset_leaves_a_configured_process_alone() -> None:
    root = logging.getLogger()
    root.handlers[:] = [mine := logging.StreamHandler(io.StringIO())]

    assert logs.configure_if_unset() is False
    assert root.handlers == [mine]

    root.handlers[:] = []
    assert logs.configure_if_unset() is True
    (handler,) = root.handlers
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is sys.stderr
