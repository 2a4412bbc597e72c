"""The σ sweep of the paper's figure 2 (appendix D): one noisy-ARL run per noise scale.

Every point is a full experiment (training, leakage attack) in ``OUT/runs/<run name>``; the sweep
writes ``sweep.csv`` and ``sweep.json`` (one :meth:`RunResult.row` per σ on the test split, plus
the validation Δ), ``sigma_sweep.png`` (log σ axis) and ``report.md``. The chosen σ is the one
with the largest **validation** Δ = best validation utility − the attacker's best validation
accuracy, among the rows whose models learned (see :attr:`RunResult.ranked`), so the test split
never takes part in the choice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisyarl.builders import load_data
from noisyarl.config import ConfigError, ExperimentConfig
from noisyarl.data.base import ImageSplit
from noisyarl.evaluation.plots import plot_sigma_sweep
from noisyarl.evaluation.report import Column, format_table, write_csv, write_report
from noisyarl.methods import METHODS
from noisyarl.runners.compare import check_before_decoding
from noisyarl.runners.experiment import run_experiment
from noisyarl.runners.result import DEFINITIONS, RUN_COLUMNS, RunResult, best_ranked
from noisyarl.runtime.distributed import current_env
from noisyarl.utils.io import write_json

#: The sweep table's columns: σ, the results columns, the validation Δ that chooses σ.
SWEEP_COLUMNS: list[Column] = [
    ("sigma", "σ", "{:g}"),
    *RUN_COLUMNS,
    ("valid_delta", "validation Δ (pp)", "{:.2f}"),
]


@dataclass
class SweepResult:
    """rows: one dict per σ (:meth:`RunResult.row` plus ``valid_delta``), in the order run.
    best_sigma: the σ with the largest validation Δ among the ranked runs (all runs when none
    is ranked; then ``best_ranked`` is False). metrics: σ -> that run's metrics; results: σ ->
    its :class:`RunResult`."""

    rows: list[dict[str, Any]]
    best_sigma: float
    metrics: dict[float, dict[str, Any]]
    results: dict[float, RunResult] = field(default_factory=dict)
    best_ranked: bool = True


def validation_delta(metrics: dict[str, Any] | RunResult) -> float | None:
    """Best validation utility minus the leakage attacker's best validation accuracy (pp)."""
    result = metrics if isinstance(metrics, RunResult) else RunResult.from_metrics(metrics)
    return result.validation_delta


def sweep_row(metrics: dict[str, Any] | RunResult) -> dict[str, Any]:
    """The sweep table's row of one run: its :meth:`RunResult.row` and its validation Δ."""
    result = metrics if isinstance(metrics, RunResult) else RunResult.from_metrics(metrics)
    return {**result.row(), "valid_delta": result.validation_delta}


def choose_sigma(results: dict[float, RunResult]) -> tuple[float, bool]:
    """The σ with the largest validation Δ among the ranked runs, and whether it is ranked
    (False: no σ learned, the largest validation Δ of all is returned)."""
    best, ranked = best_ranked(list(results.values()), lambda result: result.validation_delta)
    return next(sigma for sigma, result in results.items() if result is best), ranked


def check_sweepable(config: ExperimentConfig) -> None:
    """A sweep needs a defence with a noise module, a leakage attack and a Δ to select on."""
    method = METHODS.get(config.method.name)
    if method is None or not method.has_noise:
        raise ConfigError(f"method.name: {config.method.name} has no noise module to sweep")
    if not config.method.noise:
        raise ConfigError("method.noise: the noise module is switched off; nothing to sweep")
    if not config.attacks.leakage.enabled:
        raise ConfigError("attacks.leakage.enabled: the sweep selects σ by validation Δ, which "
                          "needs the leakage attack")


def sweep_points(config: ExperimentConfig, sigmas: list[float],
                 reconstruction: bool = False) -> list[ExperimentConfig]:
    """One experiment config per σ: ``config``'s method at that σ, the reconstruction attack
    kept only with ``reconstruction``."""
    points = []
    for sigma in sigmas:
        point = config.with_method(dataclasses.replace(config.method, sigma=float(sigma)))
        point.attacks = dataclasses.replace(point.attacks, reconstruction=dataclasses.replace(
            point.attacks.reconstruction,
            enabled=reconstruction and point.attacks.reconstruction.enabled))
        points.append(point)
    return points


def run_sigma_sweep(
    config: ExperimentConfig,
    out_dir: str | Path,
    sigmas: list[float] | None = None,
    *,
    resume: bool = False,
    splits: dict[str, ImageSplit] | None = None,
    reconstruction: bool = False,
    runs_dir: str | Path | None = None,
) -> SweepResult:
    """Run ``config`` once per σ (default ``config.sweep.sigmas``) and write the sweep files.

    reconstruction: also run the reconstruction attack at every σ (off by default: the choice
    of σ does not use it and it dominates CPU time). ``resume`` continues interrupted runs and
    reuses finished ones. runs_dir: where the runs go (default ``out_dir/runs``). Returns the
    rows and the validation-chosen σ.
    """
    check_sweepable(config)
    sigmas = list(config.sweep.sigmas if sigmas is None else sigmas)
    if not sigmas or not all(math.isfinite(sigma) and sigma >= 0 for sigma in sigmas):
        raise ConfigError(f"sweep.sigmas: need one or more finite values >= 0, got {sigmas}")
    if len({float(sigma) for sigma in sigmas}) < len(sigmas):
        raise ConfigError(f"sweep.sigmas: every σ must differ, got {sigmas}")
    out_dir = Path(out_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else out_dir / "runs"
    points = sweep_points(config, sigmas, reconstruction)
    check_before_decoding(config, [runs_dir / point.run_name() for point in points],
                          out_dir / "sweep.json", resume=resume, labels=splits is None)
    splits = splits or load_data(config, progress=config.train.progress)
    metrics, results = {}, {}
    for point in points:
        print(f"\n== {point.run_name()}")
        sigma = point.method.sigma
        metrics[sigma] = run_experiment(point, runs_dir / point.run_name(), resume=resume,
                                        splits=splits)
        results[sigma] = RunResult.from_metrics(metrics[sigma])
        if results[sigma].delta is None:
            raise ConfigError("tasks.utility: the sweep needs a classification utility (Δ is "
                              "not defined for a regression utility)")
    rows = [sweep_row(result) for result in results.values()]
    best_sigma, ranked = choose_sigma(results)
    if current_env().is_main:  # under torchrun rank 0 alone writes the sweep files
        _write_sweep(out_dir, config, rows, best_sigma, ranked)
    return SweepResult(rows=rows, best_sigma=best_sigma, metrics=metrics, results=results,
                       best_ranked=ranked)


def sweep_notes(best_sigma: float, ranked: bool) -> list[str]:
    """The sweep report's notes: how σ was chosen, and what the columns mean."""
    choice = (f"σ chosen on the validation split (largest validation Δ among the rows that "
              f"learned): {best_sigma:g}." if ranked else
              f"σ chosen on the validation split (largest validation Δ): {best_sigma:g}; no σ "
              "learned (every row is marked 'did not learn'), so this choice is no evidence.")
    return [choice, "Test-split figures; the test split was not used to choose σ.",
            *DEFINITIONS]


def _write_sweep(out_dir: Path, config: ExperimentConfig, rows: list[dict[str, Any]],
                 best_sigma: float, ranked: bool) -> None:
    """Write ``sweep.json``, ``sweep.csv``, ``sigma_sweep.png`` and ``report.md``."""
    write_json(out_dir / "sweep.json", {"best_sigma": best_sigma, "best_ranked": ranked,
                                        "rows": rows})
    write_csv(rows, out_dir / "sweep.csv")
    title = (f"{config.method.name} σ sweep: private {config.tasks.private.label} / "
             f"utility {config.tasks.utility.label}")
    plot_sigma_sweep(rows, out_dir / "sigma_sweep.png", title=title)
    write_report(out_dir, title=title, summary_rows=rows, columns=SWEEP_COLUMNS,
                 images={"Utility, privacy and Δ against σ": out_dir / "sigma_sweep.png"},
                 notes=sweep_notes(best_sigma, ranked))
    print("\n" + format_table(rows, SWEEP_COLUMNS))
    learned = "" if ranked else " (no σ learned)"
    print(f"\nbest σ on the validation split: {best_sigma:g}{learned}; "
          f"wrote {out_dir / 'report.md'}")


__all__ = ["SWEEP_COLUMNS", "SweepResult", "choose_sigma", "run_sigma_sweep", "sweep_notes",
           "sweep_points", "sweep_row", "validation_delta"]
