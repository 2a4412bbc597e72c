"""What every attack shares: its settings, its learning curve and the one training loop that
stops on a validation plateau (docs/method.md §3, README "Attack protocol").

Every learned attacker (the leakage attackers, the reconstruction decoder, the
re-identification head, the multi-query attackers) is trained by :func:`fit_until_plateau`:

- Adam at ``lr`` with a reduce-on-plateau schedule (halved when the validation loss has not
  improved for ``patience // 2`` epochs);
- validation after every epoch; training stops when neither the validation score nor the
  validation loss improved for ``patience`` epochs, or at the epoch ceiling;
- the ceiling is ``max_epochs`` epochs, raised so that the attacker may take at least
  ``min_steps`` optimiser steps (by default the defence's own number of training steps: an
  attacker is never given less compute than the defence it attacks);
- the model ends in its best-validation state; the headline figure is its test score there.

An attack is one module with a class behind :class:`Attack` and one line in
:data:`noisyarl.attacks.ATTACKS`; its result is an :class:`AttackResult` that round-trips to
JSON and knows its table cells.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from noisyarl.evaluation.metrics import ImageScores
from noisyarl.evaluation.statistics import Interval
from noisyarl.utils.progress import progress

#: Relative decrease of the validation loss that counts as an improvement.
LOSS_TOLERANCE = 1e-3


@dataclass(frozen=True, kw_only=True)
class AttackSettings:
    """How long and how an attacker trains, and how its test figure is measured.

    max_epochs: epoch ceiling (early stopping usually ends sooner); patience: epochs without a
    better validation score or loss before stopping; min_steps: the ceiling is raised to allow
    at least this many optimiser steps (the experiment passes the defence's step count);
    noise_draws: test passes with fresh noise averaged for the headline figure (one pass for a
    client without noise); seed: the attack's own random stream.
    """

    max_epochs: int = 30
    patience: int = 4
    min_steps: int = 0
    lr: float = 1e-3
    batch_size: int = 64
    eval_batch_size: int = 256
    noise_draws: int = 5
    seed: int = 0
    progress: bool = False

    def epoch_ceiling(self, steps_per_epoch: int) -> int:
        """The most epochs the attacker may train: ``max_epochs``, or enough for ``min_steps``."""
        needed = math.ceil(self.min_steps / max(steps_per_epoch, 1))
        return max(self.max_epochs, needed, 1)


@dataclass
class LearningCurve:
    """One attacker's training, epoch by epoch.

    records: one dict per epoch with ``epoch``, ``train_loss``, ``valid`` (score),
    ``valid_loss``, ``lr`` and any extra figures (``test``: the test score of that epoch, used
    only for the paper's best-test-epoch column). best_epoch: the epoch whose state was kept.
    """

    records: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    ceiling: int = 0
    stopped_early: bool = False

    @property
    def epochs_run(self) -> int:
        return len(self.records)

    def best(self) -> dict[str, float]:
        """The record of the kept (best-validation) epoch."""
        return next(record for record in self.records if record["epoch"] == self.best_epoch)

    def to_dict(self) -> dict[str, Any]:
        return {"records": [dict(record) for record in self.records],
                "best_epoch": self.best_epoch, "ceiling": self.ceiling,
                "stopped_early": self.stopped_early, "epochs_run": self.epochs_run}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LearningCurve:
        return cls(records=[dict(record) for record in values["records"]],
                   best_epoch=int(values["best_epoch"]), ceiling=int(values["ceiling"]),
                   stopped_early=bool(values["stopped_early"]))


def better(a: float, b: float, higher_is_better: bool) -> bool:
    """Whether score ``a`` is strictly better than ``b``."""
    return a > b if higher_is_better else a < b


def fit_until_plateau(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    train_epoch: Callable[[int], float],
    validate: Callable[[int], dict[str, float]],
    settings: AttackSettings,
    *,
    steps_per_epoch: int,
    higher_is_better: bool,
    desc: str = "attack",
) -> LearningCurve:
    """Train ``model`` epoch by epoch until validation stops improving; keep its best state.

    train_epoch(epoch) trains one epoch and returns its mean training loss; validate(epoch)
    returns at least ``{"valid": score, "valid_loss": loss}`` (more keys go into the record).
    The best epoch is the one with the best validation score (the earliest among ties); the
    model's state from that epoch is loaded back before returning.
    """
    ceiling = settings.epoch_ceiling(steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=max(settings.patience // 2, 1))
    curve = LearningCurve(ceiling=ceiling)
    best_score: float | None = None
    best_loss = math.inf
    best_state: dict[str, torch.Tensor] | None = None
    stale = 0
    for epoch in progress(range(1, ceiling + 1), desc=desc, enabled=settings.progress,
                          leave=False):
        record = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                  "train_loss": float(train_epoch(epoch)), **validate(epoch)}
        curve.records.append(record)
        improved = False
        if best_score is None or better(record["valid"], best_score, higher_is_better):
            best_score, curve.best_epoch, improved = record["valid"], epoch, True
            best_state = copy.deepcopy(model.state_dict())
        if record["valid_loss"] < best_loss * (1 - LOSS_TOLERANCE) or best_loss == math.inf:
            best_loss, improved = record["valid_loss"], True
        stale = 0 if improved else stale + 1
        scheduler.step(record["valid_loss"])
        if stale >= settings.patience:
            curve.stopped_early = True
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return curve


@dataclass(frozen=True)
class ImageRecovery:
    """How well a reconstruction attack recovered the test images it was scored on: PSNR (dB,
    data_range 1) and SSIM, beside the same figures of the mean training image on the same test
    images; ``learned``: its gain over the mean image is beyond the interval
    (:func:`~noisyarl.evaluation.metrics.beats_mean_image`); ``gain_interval``: the mean
    per-image PSNR gain (dB) with that interval over the test images (None for a result saved
    before it was measured)."""

    attack: str
    psnr: float
    ssim: float
    psnr_baseline: float
    ssim_baseline: float
    learned: bool
    gain_interval: Interval | None = None

    @property
    def gain_db(self) -> float:
        """PSNR over the mean-image baseline (dB): comparable between attacks scored on
        different test images (the decoder scores the whole test split, input optimisation the
        first few images), unlike PSNR itself."""
        return self.psnr - self.psnr_baseline


def strongest_recovery(recoveries: list[ImageRecovery]) -> ImageRecovery | None:
    """The attack that recovered the most over its mean-image baseline (largest
    :attr:`ImageRecovery.gain_db`; the first on ties), or None for an empty list."""
    return max(recoveries, key=lambda recovery: recovery.gain_db, default=None)


@dataclass
class AttackResult:
    """Base of every attack's result: its name and learning curve, JSON round trip and table
    cells. Subclasses add their figures as dataclass fields; fields whose metadata says
    ``{"json": False}`` (trained models, example tensors) stay out of the JSON."""

    attack: str
    curve: LearningCurve

    def image_recovery(self) -> ImageRecovery | None:
        """For an attack that reconstructs images, its :class:`ImageRecovery`; None for the
        others (the default)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for item in dataclasses.fields(self):
            if not item.metadata.get("json", True):
                continue
            values[item.name] = _json_value(getattr(self, item.name))
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AttackResult:
        kwargs = dict(values)
        kwargs["curve"] = LearningCurve.from_dict(values["curve"])
        for item in dataclasses.fields(cls):
            nested = item.metadata.get("from_dict")
            if nested is not None and kwargs.get(item.name) is not None:
                kwargs[item.name] = nested(kwargs[item.name])
        return cls(**kwargs)

    @abstractmethod
    def cells(self) -> dict[str, Any]:
        """This result's cells of a results table (figure name -> value)."""

    def save_figures(self, folder: Path) -> list[Path]:
        """Write this result's figures as ``folder/ATTACK.png`` (and ``ATTACK_*.png``); returns
        the paths written. Default: none. Called once, when the attack has just run (a cached
        result has no tensors left to draw)."""
        return []


@dataclass
class ImageAttackResult(AttackResult):
    """Base of the results of attacks that reconstruct images (on [0, 1], PSNR in dB with
    data_range 1): psnr / ssim / mse on the test images the attack scored, averaged over the
    test noise draws; psnr_sd: SD of PSNR over the draws; baseline: the mean training image's
    figures on the same test images; psnr_gain: the mean per-image PSNR gain over the baseline
    (dB) with its t interval over the test images (None in results saved before it was
    measured); learned: that interval lies above 0
    (:func:`~noisyarl.evaluation.metrics.beats_mean_image`; older results: PSNR above the
    baseline's)."""

    psnr: float
    ssim: float
    mse: float
    psnr_sd: float
    baseline: ImageScores = field(metadata={"from_dict": lambda values: ImageScores(**values)})
    learned: bool
    psnr_gain: Interval | None = field(default=None, kw_only=True,
                                       metadata={"from_dict": Interval.from_dict})

    def image_recovery(self) -> ImageRecovery:
        return ImageRecovery(self.attack, self.psnr, self.ssim, self.baseline.psnr,
                             self.baseline.ssim, self.learned, self.psnr_gain)


def _json_value(value: Any) -> Any:
    """A field's JSON form: ``to_dict()`` where it has one, a plain dict for a dataclass."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def not_in_json(**kwargs: Any) -> Any:
    """A dataclass field kept out of :meth:`AttackResult.to_dict` (models, tensors)."""
    return field(default=None, repr=False, compare=False, metadata={"json": False}, **kwargs)


class Attack(ABC):
    """One attack: ``run(target, settings)`` trains (or fits) the attacker on the frozen client
    and returns an :class:`AttackResult`. Registered by name in :data:`noisyarl.attacks.ATTACKS`.

    options: an instance of the attack's own ``options_type`` (a dataclass of settings beyond
    :class:`AttackSettings`, read from the config's ``attacks.options.NAME``); None gives its
    defaults (and stays None for an attack without options).
    """

    name: ClassVar[str]
    #: The result type that :meth:`run` returns (its ``from_dict`` reads a cached result back).
    result_type: ClassVar[type[AttackResult]]
    #: Whether it needs a private task (attribute attacks) or none (reconstruction, identity).
    needs_task: ClassVar[bool] = True
    #: Whether it trains a model: its result's curve holds the epochs (else the curve is empty).
    trains: ClassVar[bool] = True
    #: The dataclass of its own settings (None: it takes none).
    options_type: ClassVar[type | None] = None

    def __init__(self, options: Any = None) -> None:
        if options is None and self.options_type is not None:
            options = self.options_type()
        if options is not None and not isinstance(options, self.options_type or ()):
            raise TypeError(f"{self.name} takes {self.options_type} options, got {options!r}")
        self.options = options

    def options_key(self) -> dict[str, Any] | None:
        """The options as plain values (part of a cached result's key); None without options."""
        return None if self.options is None else dataclasses.asdict(self.options)

    @abstractmethod
    def run(self, target: Any, settings: AttackSettings) -> AttackResult:
        """Attack ``target`` (an :class:`noisyarl.attacks.view.AttackTarget`)."""


__all__ = [
    "Attack",
    "AttackResult",
    "AttackSettings",
    "ImageAttackResult",
    "LearningCurve",
    "better",
    "fit_until_plateau",
    "not_in_json",
]
