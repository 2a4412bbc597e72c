"""Rows over several training seeds: mean ± interval, per-seed values, paired comparisons.

A table row of ``run``, ``compare`` or ``sweep`` is one configuration trained once per seed
(``--seeds 0 1 2 3 4``; each seed a full run directory). :class:`SeedSummary` turns those runs
into one row: for every figure of :data:`INTERVAL_KEYS` the mean over seeds with its Student-t
95 % interval, and the per-seed values. With one seed the interval is a percentile bootstrap
over the test images instead (utility, privacy, advantage and Δ; the images' per-draw-averaged
outcomes are in ``metrics.json``), labelled "bootstrap over test images": it says nothing about
how much another seed would differ.

:func:`paired_comparisons` compares rows on Δ: seed by seed (paired t-test) when rows share two
or more seeds, image by image (paired bootstrap) when they share one; the report states in words
which differences lie beyond their interval (:func:`comparison_notes`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noisyarl.config import ExperimentConfig
from noisyarl.evaluation.report import Column, format_table, write_csv, write_report
from noisyarl.evaluation.statistics import (
    Interval,
    PairedComparison,
    bootstrap_interval,
    paired_bootstrap,
    paired_t,
    t_interval,
)
from noisyarl.methods import METHODS
from noisyarl.runners.executor import RunJob, execute
from noisyarl.runners.result import DEFINITIONS, SUMMARY_COLUMNS, RunResult
from noisyarl.utils.io import atomic_write_text, write_json

#: Figures shown as mean ± interval (row key -> cell format).
INTERVAL_KEYS: dict[str, str] = {
    "utility": "{:.2f}", "privacy": "{:.2f}", "privacy_advantage": "{:.2f}",
    "delta": "{:.2f}", "delta_normalised": "{:.2f}", "privacy_paper": "{:.2f}",
    "psnr": "{:.2f}", "ssim": "{:.3f}", "psnr_strongest": "{:.2f}", "ssim_strongest": "{:.3f}",
}

#: The figures a single seed's bootstrap over test images covers (the others get no interval).
PER_IMAGE_KEYS = ("utility", "privacy", "privacy_advantage", "delta")


@dataclass(frozen=True)
class SeedSummary:
    """One table row over seeds: ``results`` (one per seed, in seed order) and ``intervals``
    (row key -> :class:`Interval`) of the figures every seed measured."""

    label: str
    results: tuple[RunResult, ...]
    intervals: dict[str, Interval]

    @classmethod
    def of(cls, label: str, results: Sequence[RunResult]) -> SeedSummary:
        """Aggregate ``results`` (the same configuration, different seeds) into one row."""
        if not results:
            raise ValueError(f"{label}: no runs to aggregate")
        rows = [result.row(label) for result in results]
        if len(results) > 1:
            intervals = {key: t_interval([row[key] for row in rows])
                         for key in INTERVAL_KEYS if _all_numbers(row.get(key) for row in rows)}
        else:
            intervals = _single_seed_intervals(results[0], rows[0])
        return cls(label, tuple(results), intervals)

    @property
    def seeds(self) -> list[int | None]:
        return [result.seed for result in self.results]

    @property
    def status(self) -> str:
        """Which seeds' models did not learn, e.g. "seeds 1, 3: did not learn (utility)"
        (groups of seeds with different failures are joined by " / "); "" when all learned."""
        failed: dict[str, list[str]] = {}
        for result in self.results:
            if result.status:
                failed.setdefault(result.status, []).append(str(result.seed))
        if len(self.results) == 1:
            return next(iter(failed), "")
        return " / ".join(f"seed{'s' if len(seeds) > 1 else ''} {', '.join(seeds)}: {status}"
                          for status, seeds in failed.items())

    @property
    def validation_delta(self) -> float | None:
        """Mean over seeds of :attr:`RunResult.validation_delta` (None if a seed lacks it)."""
        values = [result.validation_delta for result in self.results]
        return None if None in values else statistics.fmean(values)

    @property
    def ranked(self) -> bool:
        """A row is ranked only when every seed's models learned."""
        return all(result.ranked for result in self.results)

    def row(self) -> dict[str, Any]:
        """The row for CSV and JSON: the first seed's :meth:`RunResult.row` with every
        interval figure replaced by its mean, plus ``KEY_low``, ``KEY_high``, ``KEY_seeds``
        (per-seed values), ``seeds``, ``runs`` (the run names, in seed order; in place of
        ``run``), ``interval`` (how the intervals were made) and the aggregate status."""
        per_seed = [result.row(self.label) for result in self.results]
        cells: dict[str, Any] = dict(per_seed[0])
        for key in ("utility_chance", "privacy_chance", "psnr_baseline", "ssim_baseline",
                    "psnr_strongest_baseline", "ssim_strongest_baseline",
                    "sigma_eff", "leakage_epochs", "reconstruction_epochs"):
            values = [row.get(key) for row in per_seed]
            if _all_numbers(values):
                cells[key] = statistics.fmean(values)
        for key in INTERVAL_KEYS:
            if key not in cells:
                continue  # a figure these runs did not measure (the strongest reconstruction)
            interval = self.intervals.get(key)
            cells[key] = interval.mean if interval else per_seed[0].get(key)
            cells[f"{key}_low"] = interval.low if interval else None
            cells[f"{key}_high"] = interval.high if interval else None
            cells[f"{key}_seeds"] = [row.get(key) for row in per_seed]
        cells.pop("run", None)
        cells.update(seeds=self.seeds, interval=self._interval_kind(), status=self.status,
                     runs=[result.run for result in self.results])
        return cells

    def table_row(self) -> dict[str, Any]:
        """:meth:`row` with each interval figure as its :class:`Interval`, for Markdown tables
        (shown as "mean ± half-width" or "mean [low, high]")."""
        return {**self.row(), **self.intervals}

    def _interval_kind(self) -> str:
        kinds = {interval.kind for interval in self.intervals.values()}
        return ", ".join(sorted(kinds)) or "one value"


def run_over_seeds(config: ExperimentConfig, out_dir: str | Path, *,
                   resume: bool = False) -> SeedSummary:
    """``noisyarl run --seeds``: train ``config`` once per seed into ``OUT/seed<k>`` (each a
    full run directory; ``resume`` reuses finished ones; ``config.executor`` says where they
    execute) and write ``summary.md``, ``summary.csv``, ``summary.json`` and ``report.md`` over
    the seeds into ``out_dir``."""
    out_dir = Path(out_dir)
    seeds = config.run_seeds()
    runs = [(config.with_seed(seed), out_dir / f"seed{seed}") for seed in seeds]
    jobs = [RunJob(seeded, run_dir) for seeded, run_dir in runs]
    results = [RunResult.from_metrics(metrics)
               for metrics in execute(jobs, config.executor, resume=resume)]
    summary = SeedSummary.of(results[0].display_name or config.method.name, results)
    columns = interval_columns(SUMMARY_COLUMNS)
    title = f"noisyarl run over seeds: {config.name}, {config.method.name}"
    table = format_table([summary.table_row()], columns)
    atomic_write_text(out_dir / "summary.md", f"# {title}\n\n{table}\n")
    write_csv([summary.row()], out_dir / "summary.csv")
    write_json(out_dir / "summary.json", summary.row())
    write_report(out_dir, title=title, summary_rows=[summary.table_row()], columns=columns,
                 notes=[interval_note(seeds), *DEFINITIONS,
                        f"Runs: {', '.join(str(run_dir) for _, run_dir in runs)}."])
    print("\n" + table)
    return summary


def summarise_seeds(results_by_row: dict[str, Sequence[RunResult]]) -> list[SeedSummary]:
    """One :class:`SeedSummary` per row label, in the given order."""
    return [SeedSummary.of(label, results) for label, results in results_by_row.items()]


def interval_columns(columns: Sequence[Column]) -> list[Column]:
    """``columns`` with "± 95 % CI" added to the headers of the interval figures."""
    return [(key, f"{header} ± 95 % CI" if key in INTERVAL_KEYS else header, fmt)
            for key, header, fmt in columns]


@dataclass(frozen=True)
class RowComparison:
    """Δ of row ``a`` minus Δ of row ``b``, paired by seed or by test image."""

    a: str
    b: str
    comparison: PairedComparison
    ranked: bool

    def words(self) -> str:
        sentence = self.comparison.words(self.a, self.b)
        if not self.ranked:
            return f"{sentence} No claim: a model of one of these rows did not learn."
        return sentence

    def row(self) -> dict[str, Any]:
        d = self.comparison.difference
        return {"a": self.a, "b": self.b, "delta_difference": d, "p_value": self.comparison.p_value,
                "test": self.comparison.test, "n": d.n,
                "verdict": ("beyond the interval" if self.comparison.significant and self.ranked
                            else "not established")}

    def to_dict(self) -> dict[str, Any]:
        return {"a": self.a, "b": self.b, "ranked": self.ranked, **self.comparison.to_dict()}


#: The paired-difference table's columns.
COMPARISON_COLUMNS: list[Column] = [
    ("a", "row A", "{}"),
    ("b", "row B", "{}"),
    ("delta_difference", "Δ(A) − Δ(B) (pp) ± 95 % CI", "{:+.2f}"),
    ("p_value", "p", "{:.3g}"),
    ("test", "test", "{}"),
    ("n", "pairs", "{}"),
    ("verdict", "verdict", "{}"),
]


def studied_rows(summaries: Sequence[SeedSummary]) -> list[str]:
    """The rows compared with every other by default: those of the studied defence
    (:attr:`noisyarl.methods.Defence.studied`, noisy ARL) with noise on (σ > 0), or the first
    row when there is none."""
    def studied(result: RunResult) -> bool:
        defence = METHODS.get(result.method or "")
        return (defence is not None and defence.studied and (result.sigma or 0) > 0
                and result.noise is not False)

    return ([summary.label for summary in summaries if studied(summary.results[0])]
            or [summaries[0].label])


def paired_comparisons(summaries: Sequence[SeedSummary],
                       references: Sequence[str] | None = None) -> list[RowComparison]:
    """Δ of each reference row (default :func:`studied_rows`) against every other row with a
    Δ: paired over the seeds both rows ran (≥ 2), else over the test images of their one
    shared seed. Rows without a Δ (the upper bound) or without a common seed are skipped."""
    by_label = {summary.label: summary for summary in summaries}
    unknown = [label for label in references or [] if label not in by_label]
    if unknown:
        raise ValueError(f"unknown reference row(s) {unknown}; rows: {list(by_label)}")
    comparisons = []
    for reference in references or studied_rows(summaries):
        for other in summaries:
            if other.label == reference:
                continue
            comparison = _paired_delta(by_label[reference], other)
            if comparison is not None:
                comparisons.append(RowComparison(reference, other.label, comparison,
                                                 by_label[reference].ranked and other.ranked))
    return comparisons


def interval_note(seeds: Sequence[int]) -> str:
    """The report line that says how the intervals were made."""
    if len(seeds) > 1:
        return (f"Intervals: mean ± 95 % Student-t interval over {len(seeds)} seeds "
                f"({', '.join(map(str, seeds))}); per-seed values in the CSV/JSON. Paired "
                "differences: paired t-test over seeds.")
    return ("Intervals: one seed, so each interval is a 95 % percentile bootstrap over the test "
            "images ('[low, high]'): it shows test-set noise only, not how another seed would "
            "differ. Paired differences: paired bootstrap over test images. Use --seeds for "
            "intervals over training seeds.")


def comparison_notes(comparisons: Sequence[RowComparison]) -> list[str]:
    """The report's sentences: one per comparison."""
    return [comparison.words() for comparison in comparisons]


def _paired_delta(a: SeedSummary, b: SeedSummary) -> PairedComparison | None:
    deltas_a, deltas_b = _deltas_by_seed(a), _deltas_by_seed(b)
    shared = [seed for seed in deltas_a if seed in deltas_b]
    if len(shared) >= 2:
        return paired_t([deltas_a[s] for s in shared], [deltas_b[s] for s in shared])
    if len(shared) == 1:
        images_a, images_b = _per_image_delta(a, shared[0]), _per_image_delta(b, shared[0])
        if images_a is not None and images_b is not None and images_a.shape == images_b.shape:
            return paired_bootstrap(images_a, images_b)
    return None


def _deltas_by_seed(summary: SeedSummary) -> dict[int | None, float]:
    return {result.seed: result.delta for result in summary.results
            if result.delta is not None and result.obfuscates is not False}


def _per_image_delta(summary: SeedSummary, seed: int | None) -> np.ndarray | None:
    """Utility − privacy of each test image (pp) of ``summary``'s run with ``seed``."""
    result = next(result for result in summary.results if result.seed == seed)
    if result.utility_per_image is None or result.privacy_per_image is None:
        return None
    return np.subtract(result.utility_per_image, result.privacy_per_image)


def _single_seed_intervals(result: RunResult, row: dict[str, Any]) -> dict[str, Interval]:
    """Bootstrap intervals over the test images of one run's per-image outcomes; figures the
    per-image outcomes cannot give keep their value with no interval."""
    intervals = {key: t_interval([row[key]]) for key in INTERVAL_KEYS
                 if _all_numbers([row.get(key)])}
    per_image = _paired_outcomes(result)
    if per_image is None:
        return intervals
    chance = result.privacy_chance or 0.0

    def column(index: int):
        return lambda resampled: resampled[..., index].mean(axis=1)

    statistics_of = {
        "utility": column(0), "privacy": column(1),
        "privacy_advantage": lambda resampled: resampled[..., 1].mean(axis=1) - chance,
        "delta": lambda resampled: (resampled[..., 0] - resampled[..., 1]).mean(axis=1),
    }
    for key in PER_IMAGE_KEYS:
        if key in intervals:
            intervals[key] = bootstrap_interval(per_image, statistics_of[key])
    return intervals


def _paired_outcomes(result: RunResult) -> np.ndarray | None:
    """[N, 2] utility and privacy of each test image, or None where they were not recorded."""
    utility, privacy = result.utility_per_image, result.privacy_per_image
    if utility is None or privacy is None or len(utility) != len(privacy):
        return None
    return np.stack([np.asarray(utility), np.asarray(privacy)], axis=1)


def _all_numbers(values) -> bool:
    values = list(values)
    return bool(values) and all(isinstance(value, int | float) and not isinstance(value, bool)
                                and math.isfinite(value) for value in values)


__all__ = ["COMPARISON_COLUMNS", "INTERVAL_KEYS", "PER_IMAGE_KEYS", "RowComparison",
           "SeedSummary", "comparison_notes", "interval_columns", "interval_note",
           "paired_comparisons", "run_over_seeds",
           "studied_rows", "summarise_seeds"]
