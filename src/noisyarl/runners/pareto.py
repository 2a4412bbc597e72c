"""Fair baselines: every defence trained over a grid of its trade-off knob, chosen on validation.

``noisyarl compare --pareto`` turns each ``compare`` row into one run per value of the row's knob
(:attr:`noisyarl.methods.Defence.knobs`; ``compare[i].knob`` picks another than the first;
``pareto.grids`` replaces a grid), all with the same training budget and seeds. Each defence is
then reported at the value with the largest mean **validation** Δ among the values whose models
learned in every seed, so no defence is tuned more than another and the test split never takes
part in the choice. The whole grid goes to ``pareto.md``/``pareto.csv`` and ``pareto.png``
(one privacy-utility curve per defence with its seed intervals, and the Pareto front of the
points that learned).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisyarl.config import ExperimentConfig
from noisyarl.evaluation.plots import plot_pareto
from noisyarl.evaluation.report import Column, format_table, write_csv
from noisyarl.methods import METHODS, Knob, find_knob
from noisyarl.runners.result import best_ranked
from noisyarl.runners.seeds import SeedSummary, interval_columns
from noisyarl.utils.io import atomic_write_text


@dataclass(frozen=True)
class KnobPoint:
    """One training configuration of a comparison: compare row ``row`` with its ``knob`` at
    ``value`` (both None for a plain comparison or a defence without a knob)."""

    row: str
    config: ExperimentConfig
    knob: Knob | None = None
    value: float | None = None

    @property
    def label(self) -> str:
        """The table label: ``MaxEnt-ARL (alpha=0.25)``, or the row label alone. A setting of
        the same knob already in the row label (``noisy ARL (σ=9)``) is replaced, not repeated."""
        if self.knob is None:
            return self.row
        return f"{self.curve_label} ({self.knob.symbol}={self.value:g})"

    @property
    def curve_label(self) -> str:
        """The row's label without a setting of the knob it turns (the legend of its curve)."""
        if self.knob is None:
            return self.row
        setting = re.compile(rf"\s*\({re.escape(self.knob.symbol)}=[^)]*\)")
        return setting.sub("", self.row)


def knob_points(config: ExperimentConfig,
                rows: Sequence[tuple[str, ExperimentConfig]]) -> list[KnobPoint]:
    """Every (row, knob value) to train, in row then grid order. A point's config is named
    ``<name>-<knob><value>`` so that its run directories differ from the other points'."""
    points = []
    for (label, row), entry in zip(rows, config.compare, strict=True):
        if not METHODS[row.method.name].knobs:
            points.append(KnobPoint(label, row))
            continue
        knob = find_knob(row.method.name, entry.knob)
        grid = config.pareto.grids.get(row.method.name, {}).get(knob.key) or knob.grid
        for value in grid:
            point = row.with_method(row.method.with_knob(knob.key, value))
            point = dataclasses.replace(point, name=f"{config.name}-{knob.name}{value:g}")
            points.append(KnobPoint(label, point, knob, float(value)))
    return points


def select_points(points: Sequence[KnobPoint],
                  summaries: dict[str, SeedSummary]) -> list[tuple[KnobPoint, bool]]:
    """Per compare row, the point with the largest mean validation Δ among its ranked points
    (all of them when none is ranked), and whether that choice is ranked; in row order."""
    chosen = []
    for row in dict.fromkeys(point.row for point in points):
        candidates = [point for point in points if point.row == row]
        best, ranked = best_ranked([summaries[point.label] for point in candidates],
                                   lambda summary: summary.validation_delta)
        chosen.append((next(p for p in candidates if summaries[p.label] is best), ranked))
    return chosen


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (privacy, utility) points no other point dominates (a point dominates
    another when its privacy is no higher and its utility no lower, one of them strictly).

    >>> pareto_front([(60.0, 90.0), (70.0, 92.0), (65.0, 85.0), (60.0, 80.0)])
    [0, 1]
    """
    def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    return [index for index, point in enumerate(points)
            if not any(dominates(other, point) for other in points)]


#: Extra columns of ``pareto.md``: which knob, its value, the choice and the front.
PARETO_COLUMNS: list[Column] = [
    ("knob", "knob", "{}"),
    ("knob_value", "value", "{:g}"),
    ("valid_delta", "validation Δ (pp)", "{:.2f}"),
    ("selected", "chosen on validation", "{}"),
    ("on_front", "on the Pareto front", "{}"),
]


@dataclass(frozen=True)
class ParetoGrid:
    """A Pareto run's whole grid: every point, its row over seeds (by point label), and the
    point chosen per compare row with whether that choice is ranked."""

    points: Sequence[KnobPoint]
    summaries: dict[str, SeedSummary]
    chosen: Sequence[tuple[KnobPoint, bool]]

    def write(self, out_dir: Path, title: str, columns: Sequence[Column]) -> Path:
        """Write ``pareto.md``, ``pareto.csv`` and ``pareto.png`` (returned)."""
        selected = {point.label for point, _ in self.chosen}
        front = self._front()
        rows, table_rows = [], []
        for point in self.points:
            summary = self.summaries[point.label]
            extra = _point_cells(point, summary, point.label in selected, point.label in front)
            rows.append({**summary.row(), **extra})
            table_rows.append({**summary.table_row(), **extra})
        shown = [*interval_columns(columns[:1]), *PARETO_COLUMNS, *interval_columns(columns[1:])]
        atomic_write_text(out_dir / "pareto.md", f"# {title}: every knob value\n\n"
                          + format_table(table_rows, shown) + "\n")
        write_csv(rows, out_dir / "pareto.csv")
        curves: dict[str, list[dict[str, Any]]] = {}
        for point, row in zip(self.points, rows, strict=True):
            curves.setdefault(point.curve_label, []).append(row)
        return plot_pareto(curves, [row for row in rows if row["on_front"] == "yes"],
                           out_dir / "pareto.png", title=title)

    def note(self) -> str:
        """The report's sentence: how each defence's knob value was chosen, from which grid."""
        grids: dict[str, tuple[Knob, list[str]]] = {}
        for point in self.points:
            if point.knob is not None:
                grids.setdefault(point.row, (point.knob, []))[1].append(f"{point.value:g}")
        described = "; ".join(f"{row}: {knob.key} ∈ {{{', '.join(values)}}}"
                              for row, (knob, values) in grids.items())
        unranked = [point.row for point, ranked in self.chosen if not ranked]
        return ("Pareto mode: each defence trained over its knob's grid with the same budget "
                f"and seeds ({described}), and shown at the value with the largest mean "
                "validation Δ among the values whose models learned in every seed (the test "
                "split takes no part); every value is in pareto.md and pareto.png."
                + (f" No value learned for {', '.join(unranked)}: its row is the largest "
                   "validation Δ of all and is not evidence." if unranked else ""))

    def _front(self) -> set[str]:
        """Labels of the learned points on the Pareto front."""
        learned = [(point.label, self.summaries[point.label].row()) for point in self.points
                   if self.summaries[point.label].ranked]
        learned = [(label, row) for label, row in learned if row.get("privacy") is not None]
        front = pareto_front([(row["privacy"], row["utility"]) for _, row in learned])
        return {learned[index][0] for index in front}


def _point_cells(point: KnobPoint, summary: SeedSummary, selected: bool,
                 on_front: bool) -> dict[str, Any]:
    return {"row": point.row, "knob": point.knob.key if point.knob else None,
            "knob_value": point.value, "valid_delta": summary.validation_delta,
            "selected": "yes" if selected else "", "on_front": "yes" if on_front else ""}


__all__ = ["PARETO_COLUMNS", "KnobPoint", "ParetoGrid", "knob_points", "pareto_front",
           "select_points"]
