"""A service process's logging: one JSON object a line in production, readable lines in development.

Every record goes to one stderr handler on the root logger, so the services' own INFO lines, core's and
uvicorn's all come out in one format, each with the id of the request it was written for, and every
one redacted (`redaction.RedactingFilter`). Requests are logged once each by core's access log
(`starling.access`: request id, method, route template, status, duration, client); uvicorn's own access
log, which prints the raw path and its query string, is off.

    STARLING_LOG_FORMAT   json | text; default json when STARLING_ENV=production, text otherwise
    STARLING_LOG_LEVEL    the root level, default INFO

`logging_config()` is the `logging.config.dictConfig` dictionary; `python -m starling_core.serve` hands
it to uvicorn, so every line of the process is in it from the first. `configure_if_unset()` applies it
when nothing configured the root logger, as under plain `uvicorn app` (whose own set-up leaves the root
without a handler); a process that did, pytest or a `--log-config` of its own, keeps its set-up.
`create_app`'s lifespan calls it at start-up.
"""

from __future__ import annotations

import json
import logging
import logging.config
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from starling_core.requestid import request_id_var

FORMAT_VARIABLE = "STARLING_LOG_FORMAT"
LEVEL_VARIABLE = "STARLING_LOG_LEVEL"
ACCESS_LOGGER = "starling.access"

LogFormat = Literal["json", "text"]


def format_from(environ: Mapping[str, str] = os.environ) -> LogFormat:
    """The format `environ` asks for: STARLING_LOG_FORMAT, else json in production and text otherwise."""
    chosen = environ.get(FORMAT_VARIABLE, "").strip().lower()
    if chosen == "json":
        return "json"
    if chosen == "text":
        return "text"
    if chosen:
        raise ValueError(f"{FORMAT_VARIABLE} must be json or text, got {chosen!r}")
    return "json" if environ.get("STARLING_ENV", "").strip().lower() == "production" else "text"


def level_from(environ: Mapping[str, str] = os.environ) -> str:
    return environ.get(LEVEL_VARIABLE, "").strip().upper() or "INFO"


class RequestContextFilter(logging.Filter):
    """Puts the id of the request being served (or "-") on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get() or "-"
        return True


# Attributes every record has, and uvicorn's colour copy of its message: not extra fields.
_NOT_EXTRA = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",
    "request_id",
}


class JSONFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request id, then any extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        entry.update({key: value for key, value in vars(record).items() if key not in _NOT_EXTRA})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """`2026-11-23 10:00:00,123 INFO    starling.access [<request id>] <message>`, for a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s")


def logging_config(
    *, log_format: LogFormat | None = None, level: str | None = None, access_log: bool = True
) -> dict[str, Any]:
    """The `dictConfig` of a service process: the environment decides what is not given."""
    formatter = JSONFormatter if (log_format or format_from()) == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request": {"()": f"{__name__}.RequestContextFilter"},
            "redact": {"()": "starling_core.redaction.RedactingFilter"},
        },
        "formatters": {"starling": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "starling",
                "filters": ["request", "redact"],
            }
        },
        "root": {"handlers": ["stderr"], "level": (level or level_from()).upper()},
        "loggers": {
            # uvicorn's lines go to the root's handler, in its format
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            # core's access log replaces uvicorn's, which prints raw paths with their query strings
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "WARNING"},
            ACCESS_LOGGER: {"level": "INFO" if access_log else "WARNING"},
            # seven "setup plugin" lines at every start; its migration lines stay
            "alembic.runtime.plugins": {"level": "WARNING"},
            # a dozen lines per consumer group joining, at every start and rebalance; its warnings stay
            "aiokafka": {"level": "WARNING"},
        },
    }


def configure(**options: Any) -> None:
    """Apply `logging_config(**options)` to this process."""
    logging.config.dictConfig(logging_config(**options))


def configure_if_unset() -> bool:
    """Configure logging as `configure()` does, unless the root logger has a handler; True if it did."""
    if logging.getLogger().handlers:
        return False
    configure()
    return True
