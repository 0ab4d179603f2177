"""The kit's command-line options and ini settings: namespaced, so they cannot clash with a project's own.

`--starling-db` and `--starling-keep-db` always exist. The short spellings the kit had first, `--db` and
`--keep-db`, are added only when nothing else (a conftest.py, another plugin) defines them: a project
with its own `--db` keeps it, and reaches the kit's through `--starling-db`.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

DATABASES = ("sqlite", "postgres")
SUITE_INI = "starling_suite"
DATABASE_URL_ENV = "STARLING_TEST_DATABASE_URL"
RUN_DIR_ENV = "STARLING_TEST_RUN_DIR"

# dest -> (the short spelling, a probe that parses only if the spelling is taken, its argparse arguments)
_SHORT_SPELLINGS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "starling_db": ("--db", "--db=sqlite", {"choices": DATABASES, "default": "sqlite"}),
    "starling_keep_db": ("--keep-db", "--keep-db", {"action": "store_true", "default": False}),
}


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("starling", "Starling test kit")
    group.addoption(
        "--starling-db",
        dest="starling_db",
        choices=DATABASES,
        default="sqlite",
        help="database the kit's fixtures run on: sqlite (default) or postgres; also --db when free",
    )
    group.addoption(
        "--starling-keep-db",
        dest="starling_keep_db",
        action="store_true",
        default=False,
        help="leave the test databases in place after the run, for inspection; also --keep-db when free",
    )
    parser.addini(
        SUITE_INI,
        type="bool",
        default=False,
        help="the kit manages the whole suite: every async test on the session loop, gc.freeze() "
        "after start-up, and the leak guard on every test (default: off)",
    )


def add_short_spellings(parser: pytest.Parser) -> None:
    """`--db` and `--keep-db` for the kit's options, where the project's initial conftests and its other
    plugins left them free (called once those are loaded, before the command line is parsed)."""
    group = parser.getgroup("starling")
    for dest, (spelling, probe, arguments) in _SHORT_SPELLINGS.items():
        if _is_free(parser, probe):
            group.addoption(spelling, dest=dest, help=f"the same as --{dest.replace('_', '-')}", **arguments)


def _is_free(parser: pytest.Parser, probe: str) -> bool:
    try:
        _, unknown = parser.parse_known_and_unknown_args([probe])
    except pytest.UsageError:  # an option of that name exists and refused the probe's value
        return False
    return probe in unknown


def database(config: pytest.Config) -> str:
    return str(config.getoption("starling_db"))


def keep_databases(config: pytest.Config) -> bool:
    return bool(config.getoption("starling_keep_db"))


def manages_suite(config: pytest.Config) -> bool:
    """Whether the suite opted in (`starling_suite = true`) to what the kit changes for every test."""
    return bool(config.getini(SUITE_INI))


def wants_postgres(config: pytest.Config) -> bool:
    return bool(os.environ.get(DATABASE_URL_ENV)) or database(config) == "postgres"
