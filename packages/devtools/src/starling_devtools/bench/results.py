"""A bench result: figures with their reference, ratio and target, printed as a table and saved as JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starling_devtools.bench.stats import ratio

COLUMNS = ("part", "figure", "value", "reference", "ratio", "target", "met?")


@dataclass(frozen=True)
class Target:
    text: str  # what is asked, e.g. "<= 3 ms/test"
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

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


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

    def as_dict(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "columns": list(COLUMNS),
            "figures": [figure.as_dict() for figure in self.figures],
            "measurements": self.measurements,
        }

    def write_json(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.as_dict(), indent=2, default=str) + "\n")


def format_number(value: float) -> str:
    """Three significant figures, thousands separated: 0.213, 2.13, 21.3, 7,362."""
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def format_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "x":
        return f"{format_number(value)}x"
    return f"{format_number(value)} {unit}".strip()


def row(figure: Figure) -> list[str]:
    value = format_value(figure.value, figure.unit)
    if figure.detail:
        value = f"{value} ({figure.detail})"
    if figure.note:
        value = f"{value}: {figure.note}" if figure.value is not None else figure.note
    reference = figure.reference
    if figure.reference_value is not None:
        reference = f"{reference}: {format_value(figure.reference_value, figure.unit)}"
    measured_ratio = figure.ratio
    met = (
        "-" if figure.target is None or figure.target.met is None else ("yes" if figure.target.met else "NO")
    )
    return [
        figure.part,
        figure.name,
        value,
        reference or "-",
        "-" if measured_ratio is None else f"{measured_ratio:.2f}x",
        figure.target.text if figure.target else "-",
        met,
    ]


def table(figures: Sequence[Figure], columns: Sequence[str] = COLUMNS) -> str:
    """A Markdown table, padded so it also reads as plain text in a terminal."""
    rows = [list(columns), *(row(figure) for figure in figures)]
    widths = [max(len(cells[index]) for cells in rows) for index in range(len(columns))]

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return "\n".join(
        [line(rows[0]), line(["-" * width for width in widths]), *(line(cells) for cells in rows[1:])]
    )


def summary(figures: Sequence[Figure]) -> Mapping[str, int]:
    """How many targets were met, missed, and could not be decided."""
    targets = [figure.target for figure in figures if figure.target is not None]
    return {
        "met": sum(1 for target in targets if target.met is True),
        "missed": sum(1 for target in targets if target.met is False),
        "undecided": sum(1 for target in targets if target.met is None),
    }
