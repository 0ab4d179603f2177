from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from starling_core.pagination import InvalidCursor, Page, PageParams, decode_cursor, encode_cursor


class Item(BaseModel):
    id: str


async def test_cursor_round_trips_its_values() -> None:
    values = {"created_at": "2025-01-01T00:00:00Z", "id": "42", "n": 3}

    assert decode_cursor(encode_cursor(values)) == values


async def test_cursor_is_url_safe_without_padding() -> None:
    cursor = encode_cursor({"id": "??>>~~", "k": "x"})

    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


async def test_cursor_takes_datetimes_and_uuids_as_strings() -> None:
    row_id = uuid.uuid4()
    values = {"created_at": datetime(2025, 1, 1, tzinfo=UTC), "id": row_id}

    assert decode_cursor(encode_cursor(values)) == {"created_at": "2025-01-01T00:00:00Z", "id": str(row_id)}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


MALFORMED_CURSORS = {
    "empty": "",
    "not-base64": "!!!",
    "truncated": "a",
    "space": "ab cd",
    "padding": "abc=",
    "non-ascii": "é",
    "not-json": b64(b"not json"),
    "array": b64(b"[1, 2]"),
    "string": b64(b'"text"'),
    "not-utf8": b64(b"\xff\xfe"),
    # JSON that decodes, holding what no page wrote and PostgreSQL cannot compare with (it refuses NUL)
    "nul": b64(b'{"created_at": "2026-01-01T00:00:00Z", "id": "\\u0000"}'),
    "nested-nul": b64(b'{"id": {"k": "a\\u0000"}}'),
    "infinite": b64(b'{"created_at": "2026-01-01T00:00:00Z", "id": 1e400}'),
}


@pytest.mark.parametrize("cursor", MALFORMED_CURSORS.values(), ids=MALFORMED_CURSORS.keys())
async def test_malformed_cursor_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor)


async def test_an_invalid_cursor_is_a_422_on_the_cursor_parameter() -> None:
    with pytest.raises(InvalidCursor) as refused:
        decode_cursor("!!!")
    assert refused.value.status_code == 422
    assert refused.value.detail == [
        {"loc": ["query", "cursor"], "msg": "Invalid cursor", "type": "value_error"}
    ]


async def test_page_serializes_items_and_next_cursor() -> None:
    page = Page[Item](items=[Item(id="1")], next_cursor="abc")

    assert page.model_dump() == {"items": [{"id": "1"}], "next_cursor": "abc"}


async def test_last_page_has_a_null_next_cursor() -> None:
    page = Page[Item].model_validate({"items": [], "next_cursor": None})

    assert page.model_dump_json() == '{"items":[],"next_cursor":null}'


async def test_page_params_default_to_fifty_and_no_cursor() -> None:
    assert PageParams() == PageParams(limit=50, cursor=None)


@pytest.mark.parametrize("limit", [0, 201, -1])
async def test_page_params_refuse_a_limit_outside_1_to_200(limit: int) -> None:
    with pytest.raises(ValidationError):
        PageParams(limit=limit)
