"""The pytest projects the bench runs: the same tests on the kit, on the textbook recipe, on pytest-django
(the peer), and none; and the request project.

Each is made of checked-in folders under `projects/` (linted and type-checked as the rest is), copied
over each other into a directory of its own. A project's one `*_tests.py` module is copied once per 50
tests, as test_m000.py, test_m001.py, ..., and `benchsizes.json` tells each copy its size (see
`projects/common/benchsizes.py`). Everything else a project reads when it runs: its database from
`--db` or STARLING_TEST_DATABASE_URL, the stopwatch's file from BENCH_CLOCK_OUT.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

SOURCES = Path(__file__).with_name("projects")
TESTS_PER_MODULE = 50
TEMPLATE = "*_tests.py"
SIZES = "benchsizes.json"

# The floor: async tests that do nothing, without the kit's plugin.
FLOOR = "floor"
# The kit: `db_session` from the starling plugin, which the pytest11 entry point loads.
KIT = "kit"
# SQLAlchemy's documented recipe written by hand, without the kit's plugin.
TEXTBOOK = "textbook"
# pytest-django's `django_db` on a Django model: the peer users know, in an environment of its own
# (`peers.py`); its tests are synchronous, as Django's are.
DJANGO = "pytest-django"
# One test timing requests through the kit's client and through a bare Starlette app (`inprocess.py`).
REQUESTS = "requests"
# The folders each project is made of, copied in this order: a later folder's pytest.ini replaces
# common's.
LAYOUTS = {
    FLOOR: ("common", "floor"),
    KIT: ("common", "rows", "service", "kit"),
    TEXTBOOK: ("common", "rows", "textbook"),
    DJANGO: ("common", "django"),
    REQUESTS: ("common", "service", "requests"),
}
# Where the stopwatch (projects/common/benchclock.py) writes its seconds.
CLOCK_ENV = "BENCH_CLOCK_OUT"


def folders(kind: str) -> list[Path]:
    """The checked-in folders a project of `kind` is made of; each is an import root when it runs."""
    if kind not in LAYOUTS:
        raise ValueError(f"unknown project kind {kind!r}; expected one of {', '.join(LAYOUTS)}")
    return [SOURCES / name for name in LAYOUTS[kind]]


def module_sizes(tests: int, per_module: int = TESTS_PER_MODULE) -> list[int]:
    """How many tests each module holds: full modules of `per_module`, then the remainder."""
    if tests < 1:
        raise ValueError(f"a project needs at least one test, got {tests}")
    full, rest = divmod(tests, per_module)
    return [per_module] * full + ([rest] if rest else [])


def generate(kind: str, directory: Path, tests: int) -> Path:
    """Copy the project of `kind` into `directory` (created) with `tests` tests; returns it."""
    sources = folders(kind)
    sizes = {f"test_m{index:03d}": size for index, size in enumerate(module_sizes(tests))}
    skipped = shutil.ignore_patterns("__pycache__", TEMPLATE)
    for folder in sources:
        shutil.copytree(folder, directory, ignore=skipped, dirs_exist_ok=True)
    [template] = [module for folder in sources for module in folder.glob(TEMPLATE)]
    for module in sizes:
        shutil.copyfile(template, directory / f"{module}.py")
    (directory / SIZES).write_text(json.dumps(sizes))
    return directory


def count_tests(directory: Path) -> int:
    """The tests a generated project holds."""
    sizes: dict[str, int] = json.loads((directory / SIZES).read_text())
    return sum(sizes.values())
