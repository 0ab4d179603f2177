"""A bench result: figures with their reference, ratio and target, printed as a table and saved as JSON;
and the arithmetic every part shares: alternating rounds, medians, ratios, costs over a floor."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
COLUMNS = ("part", "figure", "value", "reference", "ratio", "target", "met?")
LABELS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}


class Unavailable(RuntimeError):
    """What a part needs is missing here (wrk, py-spy, the peer's packages): reported, not failed."""


def alternating(items: Sequence[T], rounds: int) -> Iterator[tuple[int, T]]:
    """Each item once a round, every other round in reverse order: the machine is shared, so drift falls
    on both sides of a ratio, and no item always runs first."""
    for number in range(rounds):
        for item in items if number % 2 == 0 else items[::-1]:
            yield number, item


def median(values: Sequence[float]) -> float:
    """The median; raises ValueError (statistics' StatisticsError) for no values."""
    return float(statistics.median(values))


def ratio(value: float | None, reference: float | None) -> float | None:
    """`value` over `reference`; None when either is missing or the reference is not positive."""
    if value is None or reference is None or reference <= 0:
        return None
    return value / reference


def overhead_per_test(runs: Sequence[float], floor: Sequence[float], tests: int) -> float:
    """Seconds per test over the floor: the median of the paired differences, run i against floor i.

    The two runs of a pair are taken in the same round, so drift on a noisy machine cancels inside it.
    """
    if len(runs) != len(floor) or not runs:
        raise ValueError(f"need as many runs as floor runs, got {len(runs)} and {len(floor)}")
    return median([run - base for run, base in zip(runs, floor, strict=True)]) / tests


@dataclass(frozen=True)
class Target:
    text: str  # what is asked, e.g. "<= 1.5 ms/test"
    met: bool | None  # None: could not be decided (a part was skipped or failed)


def at_most(value: float | None, bound: float, unit: str) -> Target:
    return Target(f"<= {format_number(bound)}{unit}", None if value is None else value <= bound)


def at_least(value: float | None, bound: float, unit: str) -> Target:
    return Target(f">= {format_number(bound)}{unit}", None if value is None else value >= bound)


@dataclass(frozen=True)
class Figure:
    part: str
    name: str
    value: float | None
    unit: str
    reference: str = ""  # what the value is compared with, measured in the same run unless said
    reference_value: float | None = None
    target: Target | None = None
    detail: str = ""  # secondary numbers: percentiles, errors, spread
    note: str = ""  # why a value is missing

    @property
    def ratio(self) -> float | None:
        return ratio(self.value, self.reference_value)


def times_ahead(part: str, name: str, times: float | None, reference: str, bound: float) -> Figure:
    """How many times cheaper the kit is than a peer (`reference` says what the peer costs)."""
    return Figure(part, name, times, "x", reference=reference, target=at_least(times, bound, "x"))


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)  # raw runs, per part
    meta: dict[str, Any] = field(default_factory=dict)

    def add(self, *figures: Figure) -> None:
        self.figures.extend(figures)

    def write_json(self, path: Path) -> None:
        figures = [asdict(figure) | {"ratio": figure.ratio} for figure in self.figures]
        data = {"meta": self.meta, "columns": COLUMNS, "figures": figures, "measurements": self.measurements}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str) + "\n")


def format_number(value: float) -> str:
    """Three significant figures, thousands separated: 0.213, 2.13, 21.3, 7,362."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if magnitude >= 10 else f"{value:.2f}" if magnitude >= 1 else f"{value:.3g}"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{format_number(value)}x" if unit == "x" else f"{format_number(value)} {unit}".strip()


def row(figure: Figure) -> list[str]:
    value = format_value(figure.value, figure.unit)
    if figure.detail:
        value = f"{value} ({figure.detail})"
    if figure.note:
        value = f"{value}: {figure.note}" if figure.value is not None else figure.note
    reference = figure.reference
    if figure.reference_value is not None:
        reference = f"{reference}: {format_value(figure.reference_value, figure.unit)}"
    met = {None: "-", True: "yes", False: "NO"}[figure.target.met if figure.target else None]
    measured = figure.ratio
    target = figure.target.text if figure.target else "-"
    ratio_text = "-" if measured is None else f"{measured:.2f}x"
    return [figure.part, figure.name, value, reference or "-", ratio_text, target, met]


def table(figures: Sequence[Figure]) -> str:
    """A Markdown table, padded so it also reads as plain text in a terminal."""
    rows = [list(COLUMNS), *(row(figure) for figure in figures)]
    widths = [max(len(cells[index]) for cells in rows) for index in range(len(COLUMNS))]
    rows.insert(1, ["-" * width for width in widths])
    return "\n".join(
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"
        for cells in rows
    )


def summary(figures: Sequence[Figure]) -> dict[str, int]:
    """How many targets were met, missed, and could not be decided."""
    words = {True: "met", False: "missed", None: "undecided"}
    counted = Counter(words[figure.target.met] for figure in figures if figure.target is not None)
    return {word: counted[word] for word in words.values()}
