"""The arithmetic of the figures: medians, ratios, per-test overheads over paired runs, growth."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    if not values:
        raise ValueError("median of no values")
    return float(statistics.median(values))


def ratio(value: float | None, reference: float | None) -> float | None:
    """`value` over `reference`; None when either is missing or the reference is not positive."""
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def overhead_per_test(runs: Sequence[float], floor: Sequence[float], tests: int) -> float:
    """Seconds per test over the floor: the median of the paired differences, run i against floor i.

    The two runs of a pair are taken back to back, so drift on a noisy machine cancels inside the pair.
    """
    if len(runs) != len(floor) or not runs:
        raise ValueError(f"need as many runs as floor runs, got {len(runs)} and {len(floor)}")
    if tests < 1:
        raise ValueError(f"tests must be at least 1, got {tests}")
    return median([run - base for run, base in zip(runs, floor, strict=True)]) / tests


def growth(per_test_small: float, per_test_large: float) -> float | None:
    """Per-test cost on the large run over the small one: 1.0 is linear, above it costs grow faster."""
    return ratio(per_test_large, per_test_small)
