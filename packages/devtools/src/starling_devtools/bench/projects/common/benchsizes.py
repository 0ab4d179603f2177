"""How many tests each test module of a project holds, from the `benchsizes.json` the bench writes.

The bench copies a project's one test module once per 50 tests (test_m000.py, test_m001.py, ...). Each
copy binds its test function under as many names as its size, test_0, test_1, ...: pytest collects,
runs and reports them one by one, as if each had been written out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

SIZES = Path(__file__).with_name("benchsizes.json")
Test = TypeVar("Test", bound=Callable[..., Any])


def numbered(module: str, test: Test) -> dict[str, Test]:
    """`test` under the names of module `module`'s tests, to add to its globals()."""
    sizes: dict[str, int] = json.loads(SIZES.read_text())
    return {f"test_{number}": test for number in range(sizes[module])}
