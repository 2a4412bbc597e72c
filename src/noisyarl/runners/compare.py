"""Compare defences on the same data and seeds, shaped like the paper's tables 1-3.

A comparison config is an experiment config with a ``compare`` list; each entry names a row
label and the ``method`` that replaces the config's own. Every row is a full experiment
(training, leakage and reconstruction attacks, client cost) in ``OUT/runs/<run name>``; the
comparison writes ``table.md`` and ``table.csv`` (the rows of
:meth:`noisyarl.runners.result.RunResult.row`: utility, privacy and their chance levels,
advantage, Δ, PSNR and SSIM beside their mean-image baselines, status, then the client's GFLOPs,
parameters and bytes sent), ``privacy_utility.png`` (one point per method),
``reconstructions.png`` (originals over every defence's reconstructions) and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisyarl.builders import load_data, resolve_tasks
from noisyarl.config import ConfigError, ExperimentConfig
from noisyarl.data.base import ImageSplit
from noisyarl.data.registry import available_labels
from noisyarl.evaluation.plots import plot_privacy_utility
from noisyarl.evaluation.report import (
    Column,
    format_table,
    paper_reference_rows,
    write_csv,
    write_report,
)
from noisyarl.runners.experiment import run_experiment, save_reconstruction_grid
from noisyarl.runners.result import COMPARE_COLUMNS, DEFINITIONS, RunResult, table_columns
from noisyarl.runtime import resolve_device
from noisyarl.runtime.distributed import current_env
from noisyarl.utils.io import atomic_write_text

#: The comparison table's columns (:data:`noisyarl.runners.result.COMPARE_COLUMNS`).
TABLE_COLUMNS: list[Column] = COMPARE_COLUMNS


def comparison_configs(config: ExperimentConfig) -> list[tuple[str, ExperimentConfig]]:
    """(row label, experiment config) for every ``compare`` entry, in order."""
    if not config.compare:
        raise ConfigError("compare: the config lists no methods to compare")
    rows = []
    for entry in config.compare:
        row_config = config.with_method(entry.method)
        rows.append((entry.label or row_config.run_name(), row_config))
    labels = [label for label, _ in rows]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ConfigError(f"compare: row labels must differ, repeated: {duplicates}")
    return rows


def check_before_decoding(config: ExperimentConfig, run_dirs: list[Path], result: Path, *,
                          resume: bool, labels: bool = True) -> None:
    """What a comparison or a sweep checks before decoding any image.

    Without ``resume``, neither its ``result`` file (``table.md``, ``sweep.json``) nor any of its
    ``run_dirs`` may be finished already (that would rerun or overwrite them); the device must
    exist; with ``labels``, both task labels must be columns of the dataset's label files.
    Raises :class:`FileExistsError` or :class:`ConfigError`.
    """
    finished = [path for path in [result, *(d / "metrics.json" for d in run_dirs)]
                if path.exists()]
    if finished and not resume:
        names = ", ".join(str(path) for path in finished[:3]) + (", ..." if finished[3:] else "")
        raise FileExistsError(f"{result.parent} already holds finished results ({names}); "
                              "choose a new --out, or add --resume to reuse the finished runs "
                              "and continue the others")
    resolve_device(config.train.device)
    if labels:
        resolve_tasks(config, available_labels(config.data.dataset, config.data.root))


def table_row(label: str, metrics: dict[str, Any]) -> dict[str, Any]:
    """One row of ``table.csv``: :meth:`RunResult.row` of ``metrics`` labelled ``label``.

    A defence that sends raw images (the upper bound) has no Δ, as in the paper.
    """
    return RunResult.from_metrics(metrics).row(label)


def run_comparison(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    splits: dict[str, ImageSplit] | None = None,
) -> list[dict[str, Any]]:
    """Run every ``config.compare`` entry on the same decoded data and seed; write the table.

    ``resume`` continues interrupted rows and reuses finished ones. Returns the table rows.
    """
    out_dir = Path(out_dir)
    rows_to_run = comparison_configs(config)
    check_before_decoding(config, [out_dir / "runs" / row.run_name() for _, row in rows_to_run],
                          out_dir / "table.md", resume=resume, labels=splits is None)
    splits = splits or load_data(config, progress=config.train.progress)
    results, run_dirs = [], []
    for label, row_config in rows_to_run:
        run_dir = out_dir / "runs" / row_config.run_name()
        print(f"\n== {label}: {row_config.run_name()}")
        metrics = run_experiment(row_config, run_dir, resume=resume, splits=splits)
        results.append(RunResult.from_metrics(metrics))
        run_dirs.append((label, run_dir))
    rows = [result.row(label) for result, (label, _) in zip(results, run_dirs, strict=True)]
    if current_env().is_main:  # under torchrun rank 0 alone writes the table
        _write_comparison(out_dir, config, results, run_dirs)
    return rows


def _write_comparison(out_dir: Path, config: ExperimentConfig, results: list[RunResult],
                      run_dirs: list[tuple[str, Path]]) -> None:
    """Write ``table.md``, ``table.csv``, the figures and ``report.md``; print the table."""
    title = (f"{config.name}: private {config.tasks.private.label} / utility "
             f"{config.tasks.utility.label} ({config.data.dataset})")
    rows = [result.row(label) for result, (label, _) in zip(results, run_dirs, strict=True)]
    columns = table_columns(TABLE_COLUMNS, results)
    table = format_table(rows, columns)
    atomic_write_text(out_dir / "table.md", f"# {title}\n\n{table}\n")
    write_csv(rows, out_dir / "table.csv")
    images = {}
    if all(result.utility_metric == "accuracy" for result in results):
        images["Privacy against utility (up and to the left is better)"] = plot_privacy_utility(
            rows, out_dir / "privacy_utility.png", title=title)
    grid = save_reconstruction_grid(run_dirs, out_dir / "reconstructions.png")
    if grid is not None:
        images["Reconstruction attack: originals (top) and each defence"] = grid
    paper = paper_reference_rows(**config.reference) if config.reference else None
    write_report(out_dir, title=title, summary_rows=rows, images=images,
                 notes=_comparison_notes(config, results, worst_case=columns != TABLE_COLUMNS),
                 paper_rows=paper, columns=columns)
    print("\n" + table)
    print(f"\nwrote {out_dir / 'table.md'}, {out_dir / 'table.csv'} and {out_dir / 'report.md'}")


def _comparison_notes(config: ExperimentConfig, results: list[RunResult], *,
                      worst_case: bool) -> list[str]:
    """The comparison report's notes: what the columns mean, cost, data, the worst case."""
    metric = results[0].utility_metric or "the utility task's metric"
    notes = [
        *DEFINITIONS,
        f"Utility metric: {metric}. Client cost for one image: FLOPs with 1 multiply-add = "
        "2 FLOPs; z sent as float32.",
        f"Data: {config.data.dataset} at {config.data.root}, {config.data.image_size} px; "
        f"seed {config.seed}; {config.train.epochs} training epochs.",
    ]
    unranked = [result.run for result in results if not result.ranked]
    if unranked:
        notes.append(f"Not ranked (a model did not learn): {', '.join(map(str, unranked))}.")
    if worst_case:
        notes.append(
            "Worst case (attacks.suite: worst_case): the strongest of the attackers "
            f"{', '.join(config.attacks.worst_case.attackers)}, each scored at its best "
            "validation epoch; worst-case Δ = Utility − worst case. Privacy at max k: the "
            f"proxy attacker on the mean of {max(config.attacks.worst_case.queries)} queries. "
            "Re-ID: the stronger re-identification attack on test identities. Details in each "
            "run's report.md and attacks/worst_case.json.")
    return notes


__all__ = ["TABLE_COLUMNS", "check_before_decoding", "comparison_configs", "run_comparison",
           "table_row"]
