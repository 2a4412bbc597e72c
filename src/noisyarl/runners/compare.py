"""Compare defences on the same data and seeds, shaped like the paper's tables 1-3.

A comparison config is an experiment config with a ``compare`` list; each entry names a row
label and the ``method`` that replaces the config's own. Every row is a full experiment
(training, leakage and reconstruction attacks, client cost) in ``OUT/runs/<run name>``; the
comparison writes ``table.md`` and ``table.csv`` (Privacy ↓, Utility ↑, Δ ↑, client GFLOPs,
parameters, bytes sent, PSNR, SSIM), ``privacy_utility.png`` (one point per method),
``reconstructions.png`` (originals over every defence's reconstructions) and ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from noisyarl.attacks.suite import WORST_CASE_COLUMNS
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
from noisyarl.methods import METHODS
from noisyarl.runners.experiment import run_experiment, save_reconstruction_grid
from noisyarl.runtime import resolve_device
from noisyarl.runtime.distributed import current_env
from noisyarl.utils.io import atomic_write_text

TABLE_COLUMNS: list[Column] = [
    ("method", "method", "{}"),
    ("privacy", "Privacy ↓", "{:.2f}"),
    ("utility", "Utility ↑", "{:.2f}"),
    ("delta", "Δ ↑ (pp)", "{:.2f}"),
    ("client_gflops", "client GFLOPs", "{:.3f}"),
    ("client_params_m", "client params (M)", "{:.3f}"),
    ("z_kib", "z sent (KiB)", "{:.1f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
]


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
    """One row of ``table.csv``: the paper's three columns, client cost and reconstruction.

    A defence that sends raw images (the upper bound) has no Δ, as in the paper.
    """
    cost = metrics["client_cost"]
    obfuscates = METHODS[metrics["method"]].obfuscates
    return {
        "method": label,
        "method_name": metrics["method"],
        "split": metrics["split"],
        "sigma": metrics["sigma"],
        "privacy": metrics["privacy"],
        "utility": metrics["utility"],
        "utility_metric": metrics["utility_task"]["metric"],
        "delta": metrics["delta"] if obfuscates else None,
        "client_gflops": metrics["client_gflops"],
        "client_params_m": cost["params"] / 1e6,
        "z_kib": cost["z_bytes"] / 1024,
        "peak_activation_mib": cost["peak_activation_bytes"] / 2**20,
        "psnr": metrics["psnr"],
        "ssim": metrics["ssim"],
        "privacy_last_epoch": metrics["privacy_last_epoch"],
        "run": metrics["run"],
        **_worst_case_cells(metrics, obfuscates),
    }


def _worst_case_cells(metrics: dict[str, Any], obfuscates: bool) -> dict[str, Any]:
    """The worst-case columns of a row (``attacks.suite: worst_case``); none otherwise."""
    if metrics.get("privacy_worst_case") is None:
        return {}
    cells = {key: metrics.get(key) for key, _, _ in WORST_CASE_COLUMNS}
    if not obfuscates:
        cells["delta_worst_case"] = None
    return cells


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
    rows, run_dirs = [], []
    for label, row_config in rows_to_run:
        run_dir = out_dir / "runs" / row_config.run_name()
        print(f"\n== {label}: {row_config.run_name()}")
        metrics = run_experiment(row_config, run_dir, resume=resume, splits=splits)
        rows.append(table_row(label, metrics))
        run_dirs.append((label, run_dir))
    if current_env().is_main:  # under torchrun rank 0 alone writes the table
        _write_comparison(out_dir, config, rows, run_dirs)
    return rows


def _write_comparison(out_dir: Path, config: ExperimentConfig, rows, run_dirs) -> None:
    title = (f"{config.name}: private {config.tasks.private.label} / utility "
             f"{config.tasks.utility.label} ({config.data.dataset})")
    columns = TABLE_COLUMNS + (WORST_CASE_COLUMNS if any("privacy_worst_case" in row
                                                         for row in rows) else [])
    table = format_table(rows, columns)
    atomic_write_text(out_dir / "table.md", f"# {title}\n\n{table}\n")
    write_csv(rows, out_dir / "table.csv")
    images = {}
    if all(row["utility_metric"] == "accuracy" for row in rows):
        images["Privacy against utility (up and to the left is better)"] = plot_privacy_utility(
            rows, out_dir / "privacy_utility.png", title=title)
    grid = save_reconstruction_grid(run_dirs, out_dir / "reconstructions.png")
    if grid is not None:
        images["Reconstruction attack: originals (top) and each defence"] = grid
    notes = [
        "Privacy: best-test-epoch accuracy of a fresh attacker on the frozen client's output "
        "(noise on); Utility: test score of the utility model at its best validation epoch "
        f"({rows[0]['utility_metric']}). Δ = Utility − Privacy in percentage points.",
        "Client cost for one image: FLOPs with 1 multiply-add = 2 FLOPs; z sent as float32.",
        f"Data: {config.data.dataset} at {config.data.root}, {config.data.image_size} px; "
        f"seed {config.seed}; {config.train.epochs} training epochs.",
    ]
    if len(columns) > len(TABLE_COLUMNS):
        notes.append(
            "Worst case (attacks.suite: worst_case): the strongest of the attackers "
            f"{', '.join(config.attacks.worst_case.attackers)}, each scored at its best "
            "validation epoch; worst-case Δ = Utility − worst case. Privacy at max k: the "
            f"proxy attacker on the mean of {max(config.attacks.worst_case.queries)} queries. "
            "Re-ID: the stronger re-identification attack on test identities. Details in each "
            "run's report.md and attacks/worst_case.json.")
    paper = paper_reference_rows(**config.reference) if config.reference else None
    write_report(out_dir, title=title, summary_rows=rows, images=images, notes=notes,
                 paper_rows=paper, columns=columns)
    print("\n" + table)
    print(f"\nwrote {out_dir / 'table.md'}, {out_dir / 'table.csv'} and {out_dir / 'report.md'}")


__all__ = ["TABLE_COLUMNS", "check_before_decoding", "comparison_configs", "run_comparison",
           "table_row"]
