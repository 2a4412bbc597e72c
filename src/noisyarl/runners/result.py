"""The typed view of one run's ``metrics.json``, its table row and the results tables' columns.

:class:`RunResult` is the one place that reads ``metrics.json`` keys: the comparison, the σ
sweep, the demo, a run's own report and the benchmarks all build their rows with
:meth:`RunResult.row`, so every table has the same cells in the same order. Older runs whose
``metrics.json`` lacks a key give ``None`` for it (a missing cell in the tables).

Row status: a run whose utility head, leakage attacker or decoder did not beat chance is marked
"did not learn (...)"; such rows are not ranked and never chosen as the best anywhere
(:func:`best_ranked`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from noisyarl.attacks import ATTACKS
from noisyarl.attacks.base import ImageRecovery
from noisyarl.attacks.suite import WORST_CASE_COLUMNS
from noisyarl.evaluation.report import Column

#: Row keys of the worst-case suite's columns (present in a row only when the suite ran).
WORST_CASE_KEYS: tuple[str, ...] = tuple(key for key, _, _ in WORST_CASE_COLUMNS)

#: The strongest of several reconstruction attacks (decoder, input optimisation): present in a
#: run's metrics and row only when more than one reconstruction attack ran.
STRONGEST_RECONSTRUCTION_COLUMNS: list[Column] = [
    ("reconstruction_strongest", "strongest reconstruction", "{}"),
    ("psnr_strongest", "its PSNR (dB)", "{:.2f}"),
    ("psnr_strongest_baseline", "its PSNR mean image", "{:.2f}"),
    ("ssim_strongest", "its SSIM", "{:.3f}"),
    ("ssim_strongest_baseline", "its SSIM mean image", "{:.3f}"),
]
STRONGEST_RECONSTRUCTION_KEYS: tuple[str, ...] = tuple(
    key for key, _, _ in STRONGEST_RECONSTRUCTION_COLUMNS)

#: Row keys that hold a Δ: ``None`` for a defence that does not obfuscate (it sends raw images).
DELTA_KEYS: tuple[str, ...] = ("delta", "delta_normalised", "delta_paper", "delta_worst_case")

#: The canonical row keys, in the one order every table and CSV uses (worst-case keys follow).
ROW_KEYS: tuple[str, ...] = (
    "method", "method_name", "split", "sigma", "sigma_eff",
    "utility", "utility_sd", "utility_chance",
    "privacy", "privacy_sd", "privacy_chance", "privacy_advantage",
    "delta", "delta_normalised", "privacy_paper", "delta_paper",
    "psnr", "psnr_baseline", "ssim", "ssim_baseline",
    "client_gflops", "client_params_m", "z_kib",
    "status", "leakage_epochs", "reconstruction_epochs", "run",
)

#: Leading columns: which run a row is.
METHOD_COLUMNS: list[Column] = [
    ("method", "method", "{}"),
    ("split", "K", "{}"),
    ("sigma", "σ", "{:g}"),
]

#: The results columns every table shows, in this order.
RUN_COLUMNS: list[Column] = [
    ("utility", "utility ↑", "{:.2f}"),
    ("utility_chance", "utility chance", "{:.2f}"),
    ("privacy", "privacy ↓ (valid-selected)", "{:.2f}"),
    ("privacy_chance", "privacy chance", "{:.2f}"),
    ("privacy_advantage", "advantage ↓ (pp)", "{:.2f}"),
    ("delta", "Δ ↑ (pp)", "{:.2f}"),
    ("delta_normalised", "Δ/chance ↑", "{:.2f}"),
    ("privacy_paper", "privacy (paper: best test epoch)", "{:.2f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("psnr_baseline", "PSNR mean image", "{:.2f}"),
    ("ssim", "SSIM", "{:.3f}"),
    ("ssim_baseline", "SSIM mean image", "{:.3f}"),
    ("sigma_eff", "σ_eff", "{:.3g}"),
    ("status", "status", "{}"),
]

#: The client's cost for one image (the comparison's extra columns).
COST_COLUMNS: list[Column] = [
    ("client_gflops", "client GFLOPs", "{:.3f}"),
    ("client_params_m", "client params (M)", "{:.3f}"),
    ("z_kib", "z sent (KiB)", "{:.1f}"),
]

#: One run's report and the demo's summary: which run, the results, the client's GFLOPs.
SUMMARY_COLUMNS: list[Column] = [*METHOD_COLUMNS, *RUN_COLUMNS, COST_COLUMNS[0]]

#: The comparison's table: the results, then the client's cost.
COMPARE_COLUMNS: list[Column] = [METHOD_COLUMNS[0], *RUN_COLUMNS, *COST_COLUMNS]

#: What the notes of every report say the columns mean.
DEFINITIONS: tuple[str, ...] = (
    "Headline privacy: the fresh attacker's test score at its best validation epoch, mean over "
    "the test noise draws (privacy_sd: their SD); the paper's protocol (best test epoch) is the "
    "secondary column 'privacy (paper: best test epoch)'. Utility: the utility head's test "
    "score at its best validation epoch, mean over the test noise draws.",
    "Chance: the test split's majority rate (percent; for a regression task the MSE of "
    "predicting the mean). Advantage = privacy − privacy chance (pp); Δ = utility − privacy "
    "(pp); Δ/chance = 100·[(U−U0)/(100−U0) − (P−P0)/(100−P0)] with U0, P0 the chance levels. "
    "A defence that sends raw images has no Δ.",
    "PSNR/SSIM of the reconstruction attack stand beside the baseline of predicting the mean "
    "training image for the same test images; σ_eff = σ / between-image SD of the client's "
    "output h.",
    "Status 'did not learn (utility / attacker / decoder)': that model did not beat chance "
    "(exact binomial test; decoder: the 95 % interval of its per-image PSNR gain over the "
    "mean-image baseline not wholly above 0), so its figure is no evidence; such rows are "
    "never ranked or chosen as best.",
)


@dataclass(frozen=True)
class RunResult:
    """One finished run, typed: the figures its tables show; ``metrics`` keeps the whole dict.

    Percent figures (accuracy) or MSE (regression) as in ``metrics.json``; ``None`` where the
    run did not measure a figure or its ``metrics.json`` predates the key. ``worst_case``: the
    worst-case row cells (:data:`WORST_CASE_KEYS`) when the suite ran, else None;
    ``worst_case_suite``: the suite's full result (``attacks/worst_case.json``'s figures).
    ``strongest_reconstruction``: the cells of :data:`STRONGEST_RECONSTRUCTION_KEYS` when more
    than one reconstruction attack ran (``attacks.extra: [white_box, black_box]``), else None.
    """

    method: str | None
    display_name: str | None
    obfuscates: bool | None
    split: int | None
    sigma: float | None
    noise: bool | None
    run: str | None
    seed: int | None
    utility_metric: str | None
    private_metric: str | None
    utility: float | None
    utility_sd: float | None
    utility_valid: float | None
    utility_chance: float | None
    utility_learned: bool | None
    privacy: float | None
    privacy_sd: float | None
    privacy_valid: float | None
    privacy_paper: float | None
    privacy_last_epoch: float | None
    privacy_chance: float | None
    privacy_advantage: float | None
    privacy_learned: bool | None
    delta: float | None
    delta_paper: float | None
    delta_normalised: float | None
    psnr: float | None
    ssim: float | None
    psnr_baseline: float | None
    ssim_baseline: float | None
    reconstruction_learned: bool | None
    h_rms: float | None
    h_sd: float | None
    sigma_eff: float | None
    client_gflops: float | None
    client_params: int | None
    z_bytes: int | None
    leakage_epochs: int | None
    reconstruction_epochs: int | None
    noise_draws: int | None
    device: str | None
    precision: str | None
    stem: str | None
    split_seed: int | None
    warnings: tuple[str, ...]
    worst_case: dict[str, Any] | None
    privacy_worst_case_best_test_epoch: float | None
    worst_case_suite: dict[str, Any] | None
    strongest_reconstruction: dict[str, Any] | None = None
    machine: str | None = None
    utility_per_image: tuple[float, ...] | None = field(default=None, repr=False)
    privacy_per_image: tuple[float, ...] | None = field(default=None, repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any]) -> RunResult:
        """The typed view of a ``metrics.json`` dict (missing keys -> ``None``)."""
        if not isinstance(metrics, Mapping):
            raise TypeError(f"metrics must be a mapping, got {type(metrics).__name__}")
        kept = copy.deepcopy(dict(metrics))  # every field below refers into this copy
        get = kept.get
        utility_task, private_task = get("utility_task") or {}, get("private_task") or {}
        cost, epochs = get("client_cost") or {}, get("attack_epochs") or {}
        worst = ({key: get(key) for key in WORST_CASE_KEYS}
                 if get("privacy_worst_case") is not None else None)
        strongest = ({key: get(key) for key in STRONGEST_RECONSTRUCTION_KEYS}
                     if get("reconstruction_strongest") is not None else None)
        return cls(
            method=get("method"), display_name=get("display_name"),
            obfuscates=get("obfuscates"), split=get("split"), sigma=get("sigma"),
            noise=get("noise"), run=get("run"), seed=get("seed"),
            utility_metric=utility_task.get("metric"), private_metric=private_task.get("metric"),
            utility=get("utility"), utility_sd=get("utility_sd"),
            utility_valid=get("utility_valid"), utility_chance=get("utility_chance"),
            utility_learned=get("utility_learned"),
            privacy=get("privacy"), privacy_sd=get("privacy_sd"),
            privacy_valid=get("privacy_valid"), privacy_paper=get("privacy_paper"),
            privacy_last_epoch=get("privacy_last_epoch"), privacy_chance=get("privacy_chance"),
            privacy_advantage=get("privacy_advantage"), privacy_learned=get("privacy_learned"),
            delta=get("delta"), delta_paper=get("delta_paper"),
            delta_normalised=get("delta_normalised"),
            psnr=get("psnr"), ssim=get("ssim"), psnr_baseline=get("psnr_baseline"),
            ssim_baseline=get("ssim_baseline"),
            reconstruction_learned=get("reconstruction_learned"),
            h_rms=get("h_rms"), h_sd=get("h_sd"), sigma_eff=get("sigma_eff"),
            client_gflops=get("client_gflops"), client_params=cost.get("params"),
            z_bytes=cost.get("z_bytes"), leakage_epochs=epochs.get("leakage"),
            reconstruction_epochs=epochs.get("reconstruction"), noise_draws=get("noise_draws"),
            device=get("device"), precision=get("precision"), stem=get("stem"),
            split_seed=get("split_seed"), warnings=tuple(get("warnings") or ()),
            worst_case=worst,
            privacy_worst_case_best_test_epoch=get("privacy_worst_case_best_test_epoch"),
            worst_case_suite=get("worst_case"),
            strongest_reconstruction=strongest, machine=get("machine"),
            utility_per_image=_tuple_or_none(get("utility_per_image")),
            privacy_per_image=_tuple_or_none((get("leakage") or {}).get("test_per_image")),
            metrics=kept,
        )

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult:
        """The result of the finished run in ``run_dir`` (reads ``run_dir/metrics.json``)."""
        path = Path(run_dir) / "metrics.json"
        return cls.from_metrics(json.loads(path.read_text(encoding="utf-8")))

    def to_dict(self) -> dict[str, Any]:
        """The ``metrics.json`` dict this result was built from (a copy)."""
        return copy.deepcopy(self.metrics)

    @property
    def status(self) -> str:
        """Which model did not learn ("did not learn (utility)", ... joined by "; "), or ""."""
        flags = (("utility", self.utility_learned), ("attacker", self.privacy_learned),
                 ("decoder", self.reconstruction_learned))
        return "; ".join(f"did not learn ({name})" for name, learned in flags
                         if learned is False)

    @property
    def ranked(self) -> bool:
        """Whether the row may be ranked or chosen as best: every model learned."""
        return self.status == ""

    @property
    def validation_delta(self) -> float | None:
        """Best validation utility − the attacker's best validation score (pp), if both exist."""
        if self.utility_valid is None or self.privacy_valid is None:
            return None
        return self.utility_valid - self.privacy_valid

    def image_recoveries(self) -> list[ImageRecovery]:
        """Every reconstruction attack the run measured, read back from ``metrics.json``: the
        decoder first, then the ``attacks.extra`` attacks that reconstruct images (input
        optimisation), in the order they ran; empty when none ran."""
        stored = {"reconstruction": self.metrics.get("reconstruction"),
                  **(self.metrics.get("extra_attacks") or {})}
        results = [ATTACKS[name].result_type.from_dict(values)
                   for name, values in stored.items() if values]
        recoveries = [result.image_recovery() for result in results]
        return [recovery for recovery in recoveries if recovery is not None]

    def row(self, label: str | None = None) -> dict[str, Any]:
        """The canonical table row (keys :data:`ROW_KEYS`, then the worst-case keys if the
        suite ran, then the strongest reconstruction's if several ran); ``label`` names the
        row (default: the defence's display name)."""
        cells = {
            "method": label if label is not None else self.display_name or self.method,
            "method_name": self.method, "split": self.split, "sigma": self.sigma,
            "sigma_eff": self.sigma_eff, "utility": self.utility, "utility_sd": self.utility_sd,
            "utility_chance": self.utility_chance, "privacy": self.privacy,
            "privacy_sd": self.privacy_sd, "privacy_chance": self.privacy_chance,
            "privacy_advantage": self.privacy_advantage, "delta": self.delta,
            "delta_normalised": self.delta_normalised, "privacy_paper": self.privacy_paper,
            "delta_paper": self.delta_paper, "psnr": self.psnr,
            "psnr_baseline": self.psnr_baseline, "ssim": self.ssim,
            "ssim_baseline": self.ssim_baseline, "client_gflops": self.client_gflops,
            "client_params_m": _scaled(self.client_params, 1e6),
            "z_kib": _scaled(self.z_bytes, 1024), "status": self.status,
            "leakage_epochs": self.leakage_epochs,
            "reconstruction_epochs": self.reconstruction_epochs, "run": self.run,
            **(self.worst_case or {}),
            **(self.strongest_reconstruction or {}),
        }
        if self.obfuscates is False:
            cells.update(dict.fromkeys(key for key in DELTA_KEYS if key in cells))
        return cells


def load_results(run_dirs: Sequence[str | Path]) -> list[RunResult]:
    """:meth:`RunResult.load` of every run directory, in order."""
    return [RunResult.load(run_dir) for run_dir in run_dirs]


class Ranked(Protocol):
    """Anything with a :attr:`RunResult.ranked`-like flag (a run, or a row over seeds)."""

    @property
    def ranked(self) -> bool: ...


RankedT = TypeVar("RankedT", bound=Ranked)


def best_ranked(results: Sequence[RankedT],
                score: Callable[[RankedT], float | None]) -> tuple[RankedT, bool]:
    """The result with the largest ``score`` among the ranked ones, and True; when none is
    ranked, the largest over all, and False. A ``None`` score counts as the lowest."""
    if not results:
        raise ValueError("no results to choose from")
    ranked = [result for result in results if result.ranked]
    pool = ranked or list(results)

    def key(result: RankedT) -> float:
        value = score(result)
        return float("-inf") if value is None else value

    return max(pool, key=key), bool(ranked)


def table_columns(base: Sequence[Column], results: Sequence[RunResult]) -> list[Column]:
    """``base`` plus the worst-case columns when any of ``results`` ran the worst-case suite,
    and the strongest reconstruction's when any ran several reconstruction attacks."""
    worst = any(result.worst_case is not None for result in results)
    strongest = any(result.strongest_reconstruction is not None for result in results)
    return [*base, *(WORST_CASE_COLUMNS if worst else []),
            *(STRONGEST_RECONSTRUCTION_COLUMNS if strongest else [])]


def _tuple_or_none(values: Sequence[float] | None) -> tuple[float, ...] | None:
    return tuple(values) if values else None


def _scaled(value: float | None, unit: float) -> float | None:
    return None if value is None else value / unit


__all__ = [
    "COMPARE_COLUMNS",
    "COST_COLUMNS",
    "DEFINITIONS",
    "DELTA_KEYS",
    "METHOD_COLUMNS",
    "ROW_KEYS",
    "STRONGEST_RECONSTRUCTION_COLUMNS",
    "STRONGEST_RECONSTRUCTION_KEYS",
    "RUN_COLUMNS",
    "SUMMARY_COLUMNS",
    "WORST_CASE_KEYS",
    "RunResult",
    "best_ranked",
    "load_results",
    "table_columns",
]
