"""The σ sweep of the paper's figure 2 (appendix D): one noisy-ARL run per noise scale.

Every point is a full experiment (training, leakage attack) in ``OUT/runs/<run name>``; the sweep
writes ``sweep.csv`` and ``sweep.json`` (one :meth:`RunResult.row` per σ on the test split, plus
the validation Δ), ``sigma_sweep.png`` (log σ axis) and ``report.md``. The chosen σ is the one
with the largest **validation** Δ = best validation utility − the attacker's best validation
accuracy (mean over the seeds, ``--seeds``), among the σ values whose models learned in every
seed (see :attr:`RunResult.ranked`), so the test split never takes part in the choice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from noisyarl.config import ConfigError, ExperimentConfig
from noisyarl.data.base import ImageSplit
from noisyarl.evaluation.plots import plot_sigma_sweep
from noisyarl.evaluation.report import Column, format_table, write_csv, write_report
from noisyarl.methods import METHODS
from noisyarl.runners.compare import check_before_decoding
from noisyarl.runners.executor import RunJob, execute
from noisyarl.runners.result import DEFINITIONS, RUN_COLUMNS, RunResult, best_ranked
from noisyarl.runners.seeds import SeedSummary, interval_columns, interval_note
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
    """rows: one dict per σ (:meth:`SeedSummary.row` plus ``valid_delta``, the mean over seeds),
    in the order run. best_sigma: the σ with the largest mean validation Δ among the ranked
    σ values (all when none is ranked; then ``best_ranked`` is False). summaries: σ -> its
    :class:`SeedSummary` over the seeds; metrics: σ -> the first seed's metrics."""

    rows: list[dict[str, Any]]
    best_sigma: float
    metrics: dict[float, dict[str, Any]]
    summaries: dict[float, SeedSummary] = field(default_factory=dict)
    best_ranked: bool = True


def validation_delta(metrics: dict[str, Any] | RunResult) -> float | None:
    """Best validation utility minus the leakage attacker's best validation accuracy (pp)."""
    result = metrics if isinstance(metrics, RunResult) else RunResult.from_metrics(metrics)
    return result.validation_delta


def sweep_row(metrics: dict[str, Any] | RunResult | SeedSummary) -> dict[str, Any]:
    """The sweep table's row of one σ: its row (one run's, or the mean over seeds) and its
    validation Δ."""
    if isinstance(metrics, SeedSummary):
        return {**metrics.row(), "valid_delta": metrics.validation_delta}
    result = metrics if isinstance(metrics, RunResult) else RunResult.from_metrics(metrics)
    return {**result.row(), "valid_delta": result.validation_delta}


def choose_sigma(summaries: dict[float, SeedSummary]) -> tuple[float, bool]:
    """The σ with the largest mean validation Δ among the ranked σ values, and whether it is
    ranked (False: no σ learned, the largest validation Δ of all is returned)."""
    best, ranked = best_ranked(list(summaries.values()), lambda summary: summary.validation_delta)
    return next(sigma for sigma, summary in summaries.items() if summary is best), ranked


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
    reuses finished ones; ``config.executor`` says where the runs execute. runs_dir: where
    the runs go (default ``out_dir/runs``). Returns the rows and the validation-chosen σ.
    """
    check_sweepable(config)
    sigmas = list(config.sweep.sigmas if sigmas is None else sigmas)
    if not sigmas or not all(math.isfinite(sigma) and sigma >= 0 for sigma in sigmas):
        raise ConfigError(f"sweep.sigmas: need one or more finite values >= 0, got {sigmas}")
    if len({float(sigma) for sigma in sigmas}) < len(sigmas):
        raise ConfigError(f"sweep.sigmas: every σ must differ, got {sigmas}")
    out_dir = Path(out_dir)
    runs_dir = Path(runs_dir) if runs_dir is not None else out_dir / "runs"
    seeds = config.run_seeds()
    points = [[point.with_seed(seed) for seed in seeds]
              for point in sweep_points(config, sigmas, reconstruction)]
    check_before_decoding(config, [runs_dir / run.run_name() for runs in points for run in runs],
                          out_dir / "sweep.json", resume=resume, labels=splits is None)
    jobs = [RunJob(run, runs_dir / run.run_name()) for runs in points for run in runs]
    metrics, results = {}, {}
    for job, values in zip(jobs, execute(jobs, config.executor, resume=resume, splits=splits),
                           strict=True):
        sigma = job.config.method.sigma
        metrics.setdefault(sigma, values)
        results.setdefault(sigma, []).append(RunResult.from_metrics(values))
        if results[sigma][-1].delta is None:
            raise ConfigError("tasks.utility: the sweep needs a classification utility (Δ "
                              "is not defined for a regression utility)")
    summaries = {sigma: SeedSummary.of(f"σ={sigma:g}", runs) for sigma, runs in results.items()}
    rows = [sweep_row(summary) for summary in summaries.values()]
    best_sigma, ranked = choose_sigma(summaries)
    if current_env().is_main:  # under torchrun rank 0 alone writes the sweep files
        _write_sweep(out_dir, config, list(summaries.values()), best_sigma, ranked)
    return SweepResult(rows=rows, best_sigma=best_sigma, metrics=metrics, summaries=summaries,
                       best_ranked=ranked)


def sweep_notes(best_sigma: float, ranked: bool) -> list[str]:
    """The sweep report's notes: how σ was chosen, and what the columns mean."""
    choice = (f"σ chosen on the validation split (largest validation Δ among the rows that "
              f"learned): {best_sigma:g}." if ranked else
              f"σ chosen on the validation split (largest validation Δ): {best_sigma:g}; no σ "
              "learned (every row is marked 'did not learn'), so this choice is no evidence.")
    return [choice, "Test-split figures; the test split was not used to choose σ.",
            *DEFINITIONS]


def _write_sweep(out_dir: Path, config: ExperimentConfig, summaries: list[SeedSummary],
                 best_sigma: float, ranked: bool) -> None:
    """Write ``sweep.json``, ``sweep.csv``, ``sigma_sweep.png`` and ``report.md``."""
    rows = [sweep_row(summary) for summary in summaries]
    table_rows = [{**summary.table_row(), "valid_delta": summary.validation_delta}
                  for summary in summaries]
    columns = interval_columns(SWEEP_COLUMNS)
    write_json(out_dir / "sweep.json", {"best_sigma": best_sigma, "best_ranked": ranked,
                                        "seeds": config.run_seeds(), "rows": rows})
    write_csv(rows, out_dir / "sweep.csv")
    title = (f"{config.method.name} σ sweep: private {config.tasks.private.label} / "
             f"utility {config.tasks.utility.label}")
    plot_sigma_sweep(rows, out_dir / "sigma_sweep.png", title=title)
    write_report(out_dir, title=title, summary_rows=table_rows, columns=columns,
                 images={"Utility, privacy and Δ against σ": out_dir / "sigma_sweep.png"},
                 notes=[*sweep_notes(best_sigma, ranked)[:2], interval_note(config.run_seeds()),
                        *DEFINITIONS])
    print("\n" + format_table(table_rows, columns))
    learned = "" if ranked else " (no σ learned)"
    print(f"\nbest σ on the validation split: {best_sigma:g}{learned}; "
          f"wrote {out_dir / 'report.md'}")


__all__ = ["SWEEP_COLUMNS", "SweepResult", "choose_sigma", "run_sigma_sweep", "sweep_notes",
           "sweep_points", "sweep_row", "validation_delta"]
