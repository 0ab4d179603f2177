"""Bearer tokens out of the logs: a `token` query value never reaches a log line.

A WebSocket client that cannot send `Sec-WebSocket-Protocol: bearer, <jwt>` sends its token as
`?token=<jwt>`, and uvicorn logs every request line with its query string: HTTP requests on
`uvicorn.access`, WebSocket handshakes on `uvicorn.error`. A token copied from such a line works until
it expires. `TokenRedactor` rewrites the value of every `token` query parameter in a record's message
and arguments to `[redacted]` before any handler formats it, keeping the arguments' shape (uvicorn's
access formatter unpacks them). `redact_tokens_in_logs()` puts it on uvicorn's loggers and on every
handler configured so far, so records of any other logger are redacted too.

Only the standard library: nothing here is the agents service's own, and it can move to core as it is.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
# The loggers that write request lines: uvicorn's HTTP access log, and its WebSocket handshakes.
URL_LOGGERS = ("uvicorn.access", "uvicorn.error")

# One query parameter: what starts it, its name and its value, up to the next parameter, fragment,
# white space or quote (uvicorn quotes its request lines).
_PARAMETER = re.compile(r"(?P<start>[?&])(?P<name>[^=&#\s\"']*)=(?P<value>[^&#\s\"']*)")


def redact(text: str) -> str:
    """`text` with the value of each `token` query parameter (however its name is escaped) redacted."""
    return _PARAMETER.sub(_redacted, text) if "=" in text else text


def _redacted(match: re.Match[str]) -> str:
    if unquote_plus(match["name"]).strip().lower() != "token":
        return match[0]
    return f"{match['start']}{match['name']}={REDACTED}"


def _redact_argument(argument: object) -> object:
    if isinstance(argument, str):
        return redact(argument)
    if argument is None or isinstance(argument, int | float):
        return argument  # numbers stay numbers, for %d and %f
    text = str(argument)  # a URL object, say, that the message formats with %s
    redacted = redact(text)
    return argument if redacted == text else redacted


class TokenRedactor(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_argument(argument) for argument in record.args)
        elif isinstance(record.args, Mapping):
            record.args = {key: _redact_argument(value) for key, value in record.args.items()}
        return True


_REDACTOR = TokenRedactor()


def redact_tokens_in_logs() -> None:
    """Redact tokens on uvicorn's request loggers and in every handler there is now; again is harmless.

    A logger's filter sees only that logger's own records, and survives uvicorn's logging set-up; a
    handler's sees every record it writes, from any logger, but only handlers that exist now get it:
    call this again once the server configured its logging (the app's lifespan does).
    """
    for name in URL_LOGGERS:
        logging.getLogger(name).addFilter(_REDACTOR)  # addFilter adds a filter once
    loggers = [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
    for logger in list(loggers):
        for handler in getattr(logger, "handlers", ()):
            handler.addFilter(_REDACTOR)
