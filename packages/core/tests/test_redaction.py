"""No token, password or hash reaches a log line, wherever in the line it stands."""

from __future__ import annotations

import io
import logging
import sys

import pytest

from starling_core.redaction import RedactingFilter, redact

JWT = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTEiLCJleHAiOjE4MDAwMDAwMDB9.c2lnbmF0dXJlLWJ5dGVz"
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        (f"GET /api/v1/agents/runs/r-1/events?token={JWT} 101", JWT),
        (
            '"WebSocket /api/v1/runs/r-1/events?token=opaque-token-value-123" [accepted]',
            "opaque-token-value-123",
        ),
        ("GET /x?a=1&access_token=abc123def&b=2", "abc123def"),
        ("GET /x?%74oken=escaped-name-value", "escaped-name-value"),
        ("user signed in with password=hunter2hunter2", "hunter2hunter2"),
        ("form: username=a@b.c&password=correct-horse-battery", "correct-horse-battery"),
        (f"headers: {{'authorization': 'Bearer {JWT}'}}", JWT),
        ("Authorization: Bearer opaque-refresh-token-0123456789", "opaque-refresh-token-0123456789"),
        ("(b'authorization', b'Basic dXNlcjpzM2NyZXQ=')", "dXNlcjpzM2NyZXQ="),
        ("Cookie: session=abcdef0123456789", "abcdef0123456789"),
        (f"stored hash {HASH} for user 1", HASH),
        ("bcrypt $2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW here", "R9h/cIPz0gi"),
        ('body {"email": "a@b.c", "password": "s3cret-pass"}', "s3cret-pass"),
        ("{'new_password': 'another-secret'}", "another-secret"),
        (f"token in free text: {JWT}.", JWT),
    ],
)
def test_a_secret_is_redacted_wherever_it_stands(line: str, secret: str) -> None:
    redacted = redact(line)

    assert secret not in redacted
    assert "[redacted" in redacted


@pytest.mark.parametrize(
    "line",
    [
        "GET /api/items/{item_id} 200 3.1 ms 127.0.0.1",
        "client disconnected during POST /users",
        "Missing Authorization header",
        "a basic check of the digest",
        "GET /top-products?count=10&since=2026-01-01",
        "price is $12 and $34",
    ],
)
def test_ordinary_lines_are_left_as_they_are(line: str) -> None:
    assert redact(line) == line


def make_record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("starling.test", logging.INFO, __file__, 1, msg, args or None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_the_filter_redacts_arguments_extras_and_tracebacks() -> None:
    try:
        raise ValueError(f"bad token {JWT}")
    except ValueError:
        exc_info = sys.exc_info()
    record = make_record("login for %s with %s", "a@b.c", f"password={HASH}", path=f"/x?token={JWT}")
    record.exc_info = exc_info

    assert RedactingFilter().filter(record)

    assert JWT not in record.getMessage()
    assert HASH not in record.getMessage()
    assert record.getMessage().startswith("login for a@b.c with password=")
    assert JWT not in vars(record)["path"]
    assert record.exc_text is not None
    assert JWT not in record.exc_text
    assert "ValueError" in record.exc_text


def test_a_handler_with_the_filter_writes_no_secret_from_any_logger() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("starling.test.redaction")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        logger.warning("refresh token %s reused", "opaque?token=abc-def-ghi")
        logger.info("hash %s", HASH)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)
        logger.propagate = True

    written = stream.getvalue()
    assert "abc-def-ghi" not in written
    assert HASH not in written
    assert written.count("\n") == 2


def test_a_malformed_record_passes_the_filter_unchanged() -> None:
    record = make_record("%d items", "not a number")

    assert RedactingFilter().filter(record)
    assert record.msg == "%d items"
