"""The services' logs, one file each: what no log may hold, an unhandled error or a secret."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from starling_devtools.harness.report import Check, check

# Every password hash in PHC form starts so; the users service stores Argon2id and nothing else.
HASH_MARKERS = ("$argon2",)


def _text(log: Path) -> str:
    return log.read_text(errors="replace") if log.exists() else ""


def occurrences(log: Path | None, text: str) -> int:
    return _text(log).count(text) if log is not None else 0


def tracebacks(log: Path) -> int:
    """Tracebacks a service wrote to its log: each one is an error nobody handled."""
    return occurrences(log, "Traceback (most recent call last)")


def secrets_in(log: Path, secrets: Iterable[str]) -> int:
    """How many times a log holds any of `secrets` (tokens, passwords) or a password hash."""
    text = _text(log)
    return sum(text.count(secret) for secret in {*secrets, *HASH_MARKERS} if secret)


def tracebacks_check(logs: Mapping[str, Path]) -> Check:
    counts = {name: tracebacks(log) for name, log in logs.items()}
    figures = ", ".join(f"{name} {count}" for name, count in counts.items())
    return check("no tracebacks in the service logs", not any(counts.values()), figures)


def secrets_check(logs: Mapping[str, Path], secrets: set[str]) -> Check:
    found = {name: secrets_in(log, secrets) for name, log in logs.items()}
    figures = f"{len(secrets)} tokens and passwords looked for; found "
    figures += ", ".join(f"{name} {count}" for name, count in found.items())
    return check("no token, password or hash in the service logs", not any(found.values()), figures)
