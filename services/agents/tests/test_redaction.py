"""Tokens out of the logs: `token` query values are redacted in every record, whatever its shape."""

from __future__ import annotations

import logging

import pytest
from uvicorn.logging import AccessFormatter

from starling_agents.redaction import REDACTED, TokenRedactor, redact
from starling_core.settings import ServiceSettings
from starling_testkit import BoundDatabase

from .helpers import build_app, started

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/events?token={JWT}", f"/events?token={REDACTED}"),
        (f'"GET /x?a=1&token={JWT}&b=2 HTTP/1.1"', f'"GET /x?a=1&token={REDACTED}&b=2 HTTP/1.1"'),
        (f"/x?%74oken={JWT}", f"/x?%74oken={REDACTED}"),  # the name as the server decodes it
        (f"/x?Token={JWT}#top", f"/x?Token={REDACTED}#top"),
        (f"/x?token={JWT} and /y?token={JWT}", f"/x?token={REDACTED} and /y?token={REDACTED}"),
        ("/x?tokens=1&my_token=2&token_type=bearer", "/x?tokens=1&my_token=2&token_type=bearer"),
        ("token=plain words, no query", "token=plain words, no query"),
    ],
)
def test_only_token_query_values_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def access_record(path: str) -> logging.LogRecord:
    # what uvicorn's HTTP protocols log on `uvicorn.access`
    arguments = ("127.0.0.1:5000", "GET", path, "1.1", 200)
    message = '%s - "%s %s HTTP/%s" %d'
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, message, arguments, None)


def test_an_access_line_keeps_the_shape_uvicorns_formatter_unpacks() -> None:
    record = access_record(f"/api/v1/agents/runs/r/events?token={JWT}")
    assert TokenRedactor().filter(record)
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s', use_colors=False)
    line = formatter.format(record)
    assert line == f'127.0.0.1:5000 - "GET /api/v1/agents/runs/r/events?token={REDACTED} HTTP/1.1" 200 OK'


def test_arguments_of_any_type_and_mappings_are_redacted() -> None:
    class Address:
        def __str__(self) -> str:
            return f"ws://host/events?token={JWT}"

    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%s %d", (Address(), 3), None)
    TokenRedactor().filter(record)
    assert record.getMessage() == f"ws://host/events?token={REDACTED} 3"
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "%(url)s", ({"url": f"/?token={JWT}"},), None)
    TokenRedactor().filter(record)
    assert JWT not in record.getMessage()


async def test_a_started_app_redacts_the_records_of_any_logger(
    app_settings: ServiceSettings, app_database: BoundDatabase, caplog: pytest.LogCaptureFixture
) -> None:
    async with started(build_app(app_settings, app_database)):
        with caplog.at_level(logging.INFO):
            logging.getLogger("starling.agents").info("followed %s", f"/events?token={JWT}")
            logging.getLogger("somebody.else").warning(f"GET /x?token={JWT}")
    assert JWT not in caplog.text
    assert caplog.text.count(f"token={REDACTED}") == 2
