"""Secrets out of the logs: tokens, passwords and password hashes never reach a log line.

`redact(text)` replaces what looks like a secret wherever it stands in a line: a JWT, a password hash
(Argon2, bcrypt, scrypt, PBKDF2 in their `$id$...` form), the credentials after `Bearer`, the
value of an `Authorization`, `Cookie` or API-key header, the value of a `token=`, `password=` or
similar parameter (however its name is escaped), and the value of a `"password": "..."` pair.
`RedactingFilter` applies it to a whole record on a handler: its message with the arguments put in, the
traceback, and every string it carries as an extra field, so no formatter sees the original.

A secret in a shape none of these know (a password in free text) cannot be recognised; the soak run
checks its services' logs for every token and password it used.
"""

from __future__ import annotations

import logging
import re
import traceback
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

# A name ending in one of these holds a secret (`token`, `access_token`, `new_password`, `jwt_secret`),
# wherever `name=value` or `"name": "value"` appears: a query string, a form, a message, a dict.
SECRET_SUFFIXES = ("token", "password", "passwd", "secret", "api_key", "apikey")

# header.payload.signature, each base64url; a JWT's header is JSON, so it starts with `{"` = `eyJ`.
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_HASH = re.compile(r"\$(?:argon2(?:id|i|d)|2[abxy]|scrypt|pbkdf2[-_a-z0-9]*)\$[^\s\"',;]+")
# Only `Bearer`: "basic" and "digest" are everyday words, and their credentials come after a header name.
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{12,}")
# `Authorization: x`, `'authorization': 'x'`, `(b'authorization', b'x')`: up to the line's or quote's end.
_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key)"
    r"(['\"]?\s*[:=,]\s*b?['\"]?)([^'\"\r\n]+)"
)
_PARAMETER = re.compile(r"(?P<start>^|[?&;\s(,\"'])(?P<name>[A-Za-z0-9_%.+-]+)=(?P<value>[^&#\s\"',;)]*)")
_PAIR = re.compile(r"(?P<key>[\"'](?P<name>[A-Za-z_]+)[\"']\s*:\s*[\"'])(?P<value>[^\"']*)")


def redact(text: str) -> str:
    """`text` with every secret this module recognises replaced by a marker."""
    # Each pattern runs only where its telltale is: most lines (an access line) have none, and then
    # this costs a few substring searches rather than six regular expressions.
    if "eyJ" in text:
        text = _JWT.sub("[redacted-jwt]", text)
    if "$" in text:
        text = _HASH.sub("[redacted-hash]", text)
    lowered = text.lower()
    if "bearer" in lowered:
        text = _BEARER.sub(rf"\1\2{REDACTED}", text)
    if "authorization" in lowered or "cookie" in lowered or "api-key" in lowered:
        text = _HEADER.sub(rf"\1\2{REDACTED}", text)
    if "=" in text:
        text = _PARAMETER.sub(_parameter, text)
    if ":" in text and ('"' in text or "'" in text):
        text = _PAIR.sub(_pair, text)
    return text


def is_secret_name(name: str) -> bool:
    return name.strip().lower().endswith(SECRET_SUFFIXES)


def _parameter(match: re.Match[str]) -> str:
    if not is_secret_name(unquote_plus(match["name"])) or not match["value"]:
        return match[0]
    return f"{match['start']}{match['name']}={REDACTED}"


def _pair(match: re.Match[str]) -> str:
    if not is_secret_name(match["name"]):
        return match[0]
    return f"{match['key']}{REDACTED}"


# What every LogRecord has; anything else on a record came in through `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class RedactingFilter(logging.Filter):
    """Redacts each record it sees, in place, before any formatter reads it; never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            # The message is put together once, here, so that no argument reaches a formatter as it was.
            record.msg = redact(record.getMessage())
            record.args = None
        except Exception:  # noqa: S110 - a malformed record is the handler's to report, not the filter's
            pass
        if record.exc_info and not record.exc_text:
            record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        fields = vars(record)
        for key in fields.keys() - _STANDARD:
            if isinstance(value := fields[key], str):
                fields[key] = redact(value)
        return True
