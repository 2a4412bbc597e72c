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

from noisyarl.builders import resolve_tasks
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
from noisyarl.runners.executor import RunJob, execute
from noisyarl.runners.experiment import save_reconstruction_grid
from noisyarl.runners.pareto import KnobPoint, ParetoGrid, knob_points, select_points
from noisyarl.runners.result import COMPARE_COLUMNS, DEFINITIONS, RunResult, table_columns
from noisyarl.runners.seeds import (
    COMPARISON_COLUMNS,
    RowComparison,
    SeedSummary,
    comparison_notes,
    interval_columns,
    interval_note,
    paired_comparisons,
    summarise_seeds,
)
from noisyarl.runtime import resolve_device
from noisyarl.runtime.distributed import current_env
from noisyarl.utils.io import atomic_write_text, write_json

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
    pareto: bool = False,
) -> list[dict[str, Any]]:
    """Run every ``config.compare`` entry once per seed (``config.run_seeds()``) on the same
    decoded data; write the table with intervals and the paired comparisons.

    Every (row, seed) is a run directory ``OUT/runs/<run name>`` (the name ends in the seed).
    ``pareto``: train each row over its trade-off knob's grid and report it at the value
    chosen on validation (:mod:`noisyarl.runners.pareto`). ``resume`` continues interrupted
    runs and reuses finished ones. The runs execute where ``config.executor`` says
    (:mod:`noisyarl.runners.executor`: here one after another, or as Ray tasks). Returns the
    table rows (:meth:`noisyarl.runners.seeds.SeedSummary.row`).
    """
    out_dir = Path(out_dir)
    rows = comparison_configs(config)
    points = knob_points(config, rows) if pareto else [KnobPoint(label, row)
                                                       for label, row in rows]
    seeds = config.run_seeds()
    planned = {point.label: [(point.config.with_seed(seed),
                              out_dir / "runs" / point.config.with_seed(seed).run_name())
                             for seed in seeds] for point in points}
    check_before_decoding(config, [run_dir for runs in planned.values() for _, run_dir in runs],
                          out_dir / "table.md", resume=resume, labels=splits is None)
    jobs = [RunJob(seeded, run_dir, label)
            for label, runs in planned.items() for seeded, run_dir in runs]
    results: dict[str, list[RunResult]] = {}
    for job, metrics in zip(jobs, execute(jobs, config.executor, resume=resume, splits=splits),
                            strict=True):
        results.setdefault(job.label, []).append(RunResult.from_metrics(metrics))
    summaries = {summary.label: summary for summary in summarise_seeds(results)}
    chosen = select_points(points, summaries) if pareto else [(point, True) for point in points]
    table = [summaries[point.label] for point, _ in chosen]
    reference_rows = {label for (label, _), entry in zip(rows, config.compare, strict=True)
                      if entry.reference}
    references = [point.label for point, _ in chosen if point.row in reference_rows] or None
    if current_env().is_main:  # under torchrun rank 0 alone writes the table
        first_runs = [(point.label, planned[point.label][0][1]) for point, _ in chosen]
        _write_comparison(out_dir, config, table, first_runs,
                          ParetoGrid(points, summaries, chosen) if pareto else None,
                          references=references)
    return [summary.row() for summary in table]


def _write_comparison(out_dir: Path, config: ExperimentConfig, summaries: list[SeedSummary],
                      run_dirs: list[tuple[str, Path]], pareto: ParetoGrid | None = None, *,
                      references: list[str] | None = None) -> None:
    """Write ``table.md``, ``table.csv``, ``table.json``, the figures and ``report.md``; print
    the table. ``pareto``: the whole grid of a Pareto run (``pareto.md``, ``.csv``, ``.png``).
    ``references``: the rows whose Δ is compared with every other's (default
    :func:`~noisyarl.runners.seeds.studied_rows`)."""
    title = (f"{config.name}: private {config.tasks.private.label} / utility "
             f"{config.tasks.utility.label} ({config.data.dataset})")
    results = [result for summary in summaries for result in summary.results]
    columns = interval_columns(table_columns(TABLE_COLUMNS, results))
    comparisons = paired_comparisons(summaries, references)
    table = format_table([summary.table_row() for summary in summaries], columns)
    paired = format_table([comparison.row() for comparison in comparisons], COMPARISON_COLUMNS)
    atomic_write_text(out_dir / "table.md", f"# {title}\n\n{table}\n\n"
                      f"## Paired differences of Δ\n\n{paired}\n")
    rows = [summary.row() for summary in summaries]
    write_csv(rows, out_dir / "table.csv")
    write_json(out_dir / "table.json", {"rows": rows, "seeds": config.run_seeds(),
                                        "paired": [c.to_dict() for c in comparisons]})
    images = {}
    if all(result.utility_metric == "accuracy" for result in results):
        images["Privacy against utility (up and to the left is better)"] = plot_privacy_utility(
            rows, out_dir / "privacy_utility.png", title=title)
    notes = []
    if pareto is not None:
        images["Trade-off curves over each defence's knob, and the Pareto front"] = pareto.write(
            out_dir, title, TABLE_COLUMNS)
        notes.append(pareto.note())
    grid = save_reconstruction_grid(run_dirs, out_dir / "reconstructions.png")
    if grid is not None:
        images["Reconstruction attack: originals (top) and each defence"] = grid
    strongest = [summary.results[0].strongest_reconstruction for summary in summaries]
    strongest_grid = (save_reconstruction_grid(
        run_dirs, out_dir / "reconstructions_strongest.png",
        attacks=[(cells or {}).get("reconstruction_strongest", "reconstruction")
                 for cells in strongest]) if any(strongest) else None)
    if strongest_grid is not None:
        images["Each defence's strongest reconstruction attack: originals (top)"] = strongest_grid
    paper = paper_reference_rows(**config.reference) if config.reference else None
    write_report(out_dir, title=title, summary_rows=[s.table_row() for s in summaries],
                 images=images, columns=columns,
                 notes=notes + _comparison_notes(config, summaries, comparisons),
                 paper_rows=paper)
    print("\n" + table + "\n\n" + "\n".join(comparison_notes(comparisons)))
    print(f"\nwrote {out_dir / 'table.md'}, {out_dir / 'table.csv'} and {out_dir / 'report.md'}")


def _comparison_notes(config: ExperimentConfig, summaries: list[SeedSummary],
                      comparisons: list[RowComparison]) -> list[str]:
    """The comparison report's notes: intervals, paired differences in words, what the columns
    mean, cost, data, the worst case."""
    results = [result for summary in summaries for result in summary.results]
    metric = results[0].utility_metric or "the utility task's metric"
    seeds = config.run_seeds()
    notes = [interval_note(seeds), *comparison_notes(comparisons),
             *DEFINITIONS,
             f"Utility metric: {metric}. Client cost for one image: FLOPs with 1 multiply-add = "
             "2 FLOPs; z sent as float32.",
             f"Data: {config.data.dataset} at {config.data.root}, {config.data.image_size} px; "
             f"seeds {', '.join(map(str, seeds))}; {config.train.epochs} training epochs."]
    unranked = [summary.label for summary in summaries if not summary.ranked]
    if unranked:
        notes.append(f"Not ranked (a model did not learn in some seed): {', '.join(unranked)}.")
    if any(result.strongest_reconstruction is not None for result in results):
        notes.append(
            "Strongest reconstruction: of the reconstruction attacks each run ran (the learned "
            "decoder 'reconstruction', and input optimisation 'white_box' / 'black_box' of "
            "attacks.extra), the one with the largest PSNR gain over the mean training image "
            "on its own test images; its PSNR/SSIM stand beside that baseline.")
    if any(result.worst_case is not None for result in results):
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
