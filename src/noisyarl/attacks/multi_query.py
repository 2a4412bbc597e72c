"""Multi-query averaging: an attacker who sees k obfuscations of the same image averages them.

Noisy ARL draws its noise afresh per query, so the mean of k queries is ``h + σ·ε̄`` with
``std(ε̄) = 1/√k`` (:meth:`noisyarl.attacks.view.ZView.averaged`). For each k the leakage
attacker and the reconstruction decoder are trained, until their validation scores stop
improving, and scored on k-averaged z (:func:`run_multi_query`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
from torch import nn

from noisyarl.attacks.base import AttackSettings, LearningCurve
from noisyarl.attacks.leakage import LeakageResult, run_leakage_attack
from noisyarl.attacks.reconstruction import ReconstructionResult, run_reconstruction_attack
from noisyarl.attacks.view import AttackTarget, queries_differ


@dataclass
class QueryRow:
    """The attacks on the mean of ``queries`` obfuscations of each image.

    privacy: the leakage attacker's validation-selected test score (mean over test draws);
    privacy_paper: its best test epoch; privacy_chance / privacy_learned: the majority rate
    and whether the attacker beat it; psnr / ssim (None without the reconstruction attack)
    beside psnr_baseline (mean training image); identical_queries: two queries of an image
    give the same z (a deterministic client or keyed noise), so averaging changes nothing.
    leakage_curve / reconstruction_curve: the two attackers' learning curves (None for a row
    read from a run that predates them, and for a row without the reconstruction attack).
    """

    queries: int
    privacy: float
    privacy_paper: float
    privacy_chance: float
    privacy_learned: bool
    leakage_epochs: int
    psnr: float | None = None
    ssim: float | None = None
    psnr_baseline: float | None = None
    reconstruction_epochs: int | None = None
    identical_queries: bool = False
    leakage_curve: LearningCurve | None = field(default=None, repr=False)
    reconstruction_curve: LearningCurve | None = field(default=None, repr=False)

    @classmethod
    def measured(cls, queries: int, leakage: LeakageResult,
                 reconstruction: ReconstructionResult | None) -> QueryRow:
        row = cls(queries=queries, privacy=leakage.test, privacy_paper=leakage.paper,
                  privacy_chance=leakage.chance.chance, privacy_learned=leakage.chance.learned,
                  leakage_epochs=leakage.curve.epochs_run, leakage_curve=leakage.curve)
        if reconstruction is not None:
            row = replace(row, psnr=reconstruction.psnr, ssim=reconstruction.ssim,
                          psnr_baseline=reconstruction.baseline.psnr,
                          reconstruction_epochs=reconstruction.curve.epochs_run,
                          reconstruction_curve=reconstruction.curve)
        return row

    def curves(self) -> dict[str, LearningCurve]:
        """The row's learning curves by attack name (``leakage``, ``reconstruction``)."""
        named = {"leakage": self.leakage_curve, "reconstruction": self.reconstruction_curve}
        return {name: curve for name, curve in named.items() if curve is not None}

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for key in CURVE_KEYS:
            curve = getattr(self, key)
            values[key] = curve.to_dict() if curve is not None else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> QueryRow:
        curves = {key: LearningCurve.from_dict(values[key]) for key in CURVE_KEYS
                  if values.get(key) is not None}
        return cls(**{**values, **curves})


#: The fields of :class:`QueryRow` that hold a :class:`LearningCurve`.
CURVE_KEYS = ("leakage_curve", "reconstruction_curve")


def run_multi_query(
    target: AttackTarget,
    make_attacker: Callable[[], nn.Module],
    *,
    queries: list[int],
    leakage: AttackSettings,
    reconstruction: AttackSettings | None,
    first_row: QueryRow | None = None,
) -> list[QueryRow]:
    """One row per k of ``queries``: the leakage attacker (``make_attacker()``, a fresh module)
    and the reconstruction decoder (``reconstruction`` None: none), both trained and scored on
    k-averaged z. ``first_row``: an already measured k = 1 row to reuse.

    When two queries of an image give the same z, the k > 1 rows repeat the k = 1 row and say
    so (``identical_queries``).
    """
    identical = not queries_differ(target.view.client, target.splits["test"], target.context)
    rows: list[QueryRow] = []
    base: QueryRow | None = None
    for k in queries:
        if k == 1 and first_row is not None:
            row = first_row
        elif identical and base is not None:
            row = base
        else:
            row = _measure(target.with_view(target.view.averaged(k)), k, make_attacker,
                           leakage, reconstruction)
        row = replace(row, queries=k, identical_queries=identical)
        base = base or row
        rows.append(row)
    return rows


def _measure(target: AttackTarget, k: int, make_attacker: Callable[[], nn.Module],
             leakage: AttackSettings, reconstruction: AttackSettings | None) -> QueryRow:
    torch.manual_seed(leakage.seed)
    attacked = run_leakage_attack(target.view, make_attacker(), target.splits, target.task,
                                  leakage)
    decoded = None
    if reconstruction is not None:
        decoded = run_reconstruction_attack(target.view, target.splits, reconstruction,
                                            image_size=target.image_size, num_examples=0)
    return QueryRow.measured(k, attacked, decoded)


__all__ = ["QueryRow", "run_multi_query"]
