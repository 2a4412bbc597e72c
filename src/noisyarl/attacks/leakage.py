"""Privacy-leakage attack: a fresh attacker trained on frozen obfuscated features until its
validation score stops improving (docs/method.md §3, :mod:`noisyarl.attacks.base`).

The attacker learns the private label from ``z`` of the training split. Its headline figure is
its test score at the best validation epoch, averaged over ``noise_draws`` test passes with
fresh noise (lower is better: it is the defence's *privacy*). Beside it: the test split's
majority rate, the advantage over it, whether the attacker beat it at all (an exact binomial
test; a row that did not is "did not learn"), and the paper's figure (best test epoch of one
pass, optimistic because it selects on test).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from noisyarl.attacks.base import (
    Attack,
    AttackResult,
    AttackSettings,
    LearningCurve,
    better,
    fit_until_plateau,
)
from noisyarl.attacks.common import reduced_sum, reseed_rank
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.evaluation.metrics import advantage, beats_chance
from noisyarl.utils.seeding import PHASE_OFFSETS, epoch_generator


@dataclass
class ChanceFigures:
    """A test score beside its chance level: the split's majority rate (accuracy tasks) or the
    MSE of predicting the training mean (regression); ``learned``: beat it (exact binomial test
    for accuracy, a lower MSE for regression); ``advantage``: score − chance (accuracy only)."""

    chance: float
    n_test: int
    learned: bool
    advantage: float | None

    @classmethod
    def of(cls, score: float, task: Task, split: ImageSplit) -> ChanceFigures:
        chance = task.chance_level(split.labels[task.label])
        if task.higher_is_better:
            return cls(chance, len(split), beats_chance(score, chance, len(split)),
                       advantage(score, chance))
        return cls(chance, len(split), score < chance, None)

    def to_dict(self) -> dict[str, Any]:
        return {"chance": self.chance, "n_test": self.n_test, "learned": self.learned,
                "advantage": self.advantage}


@dataclass
class LeakageResult(AttackResult):
    """One attribute attacker's figures (accuracy in percent, or MSE for regression).

    test: headline, test score at the best validation epoch, mean over ``test_draws``;
    test_sd: their standard deviation; test_per_image: each test image's score averaged over
    the draws (see :class:`TestOutcomes`; empty in results saved before it existed); valid:
    the best validation score; paper: the best test epoch's score of one pass (the paper's
    protocol); last: the last epoch's test score; chance: :class:`ChanceFigures` of ``test``.
    """

    attacker: str
    metric: str
    higher_is_better: bool
    test: float
    test_sd: float
    test_draws: list[float]
    valid: float
    paper: float
    paper_epoch: int
    last: float
    chance: ChanceFigures = field(metadata={"from_dict": lambda values: ChanceFigures(**values)})
    test_per_image: list[float] = field(default_factory=list)

    def cells(self) -> dict[str, Any]:
        return {
            "privacy": self.test, "privacy_sd": self.test_sd, "privacy_valid": self.valid,
            "privacy_paper": self.paper, "privacy_last_epoch": self.last,
            "privacy_chance": self.chance.chance, "privacy_advantage": self.chance.advantage,
            "privacy_learned": self.chance.learned, "epochs": self.curve.epochs_run,
        }


def _pass(view: ZView, attacker: nn.Module, split: ImageSplit, task: Task, batch_size: int
          ) -> tuple[float, float]:
    """(score, mean loss) of ``attacker`` on one noisy pass over ``split``."""
    context = view.context
    attacker.eval()
    score = torch.zeros((), device=context.device)
    loss = torch.zeros((), device=context.device)
    with torch.no_grad():
        for _, z, labels in view.batches(split, batch_size):
            target = labels[task.label].to(context.device)
            with context.autocast():
                outputs = attacker(z)
            score += task.score_sum(outputs, target)
            loss += task.loss(outputs, target) * target.shape[0]
    count = len(split)
    return (task.finalize(reduced_sum(score, context), count),
            reduced_sum(loss, context) / max(count, 1))


@dataclass(frozen=True)
class TestOutcomes:
    """A trained model's test figures over ``noise_draws`` noisy passes.

    draws: the score of each pass (percent, or MSE); per_image: each test image's score
    averaged over the passes (percent correct, or MSE), in the split's order, so that rows
    scored on the same test split can be bootstrapped and paired image by image.
    """

    draws: list[float]
    per_image: list[float]

    @classmethod
    def of_passes(cls, passes: torch.Tensor, task: Task) -> TestOutcomes:
        """From :meth:`Task.per_sample_scores` of each pass, stacked [draws, N]."""
        passes = passes.float().cpu()
        scale = 100.0 if task.higher_is_better else 1.0
        return cls([task.finalize(float(row.sum()), passes.shape[1]) for row in passes],
                   [round(value, 6) for value in passes.mean(dim=0).mul(scale).tolist()])

    @property
    def mean(self) -> float:
        return statistics.fmean(self.draws)

    @property
    def sd(self) -> float:
        return statistics.stdev(self.draws) if len(self.draws) > 1 else 0.0


def test_outcomes(view: ZView, model: nn.Module, split: ImageSplit, task: Task,
                  settings: AttackSettings) -> TestOutcomes:
    """``model``'s :class:`TestOutcomes` on ``settings.noise_draws`` noisy passes over
    ``split`` (one when every pass gives the same z). Every rank scores the whole split."""
    draws = 1 if view.deterministic else settings.noise_draws
    return TestOutcomes.of_passes(
        torch.stack([_per_image_pass(view, model, split, task, settings.eval_batch_size)
                     for _ in range(draws)]), task)


def _per_image_pass(view: ZView, model: nn.Module, split: ImageSplit, task: Task,
                    batch_size: int) -> torch.Tensor:
    """:meth:`Task.per_sample_scores` of one noisy pass over all of ``split`` [N] (CPU)."""
    model.eval()
    scores = []
    with torch.no_grad():
        for _, z, labels in view.batches(split, batch_size, shard=False):
            with view.context.autocast():
                outputs = model(z)
            scores.append(task.per_sample_scores(outputs, labels[task.label].to(z.device)).cpu())
    return torch.cat(scores)


def run_leakage_attack(
    view: ZView,
    attacker: nn.Module,
    splits: dict[str, ImageSplit],
    task: Task,
    settings: AttackSettings,
    *,
    name: str = "proxy",
) -> LeakageResult:
    """Train ``attacker`` (fresh, trained in place) on ``view``'s z of ``splits['train']``.

    Adam(lr) with the shared plateau schedule and early stopping; the attacker ends in its
    best-validation state. Starts from ``settings.seed`` whatever ran before (a resumed run
    repeats it exactly). Under torchrun ``batch_size`` is the global batch, sharded over ranks.
    """
    context = view.context
    phase_seed = settings.seed + PHASE_OFFSETS["leakage"]
    torch.manual_seed(phase_seed)
    attacker = context.prepare_module(attacker)
    reseed_rank(phase_seed, context)
    optimizer = torch.optim.Adam(attacker.parameters(), lr=settings.lr, foreach=True)
    train = splits["train"]

    def train_epoch(epoch: int) -> float:
        attacker.train()
        total, count = torch.zeros((), device=context.device), 0
        generator = epoch_generator(settings.seed, epoch, "leakage")
        for _, z, labels in view.batches(train, settings.batch_size, shuffle=True,
                                         generator=generator, training=True):
            with context.autocast():
                loss = task.loss(attacker(z), labels[task.label].to(context.device))
            context.step(loss, optimizer)
            total += loss.detach() * z.shape[0]
            count += z.shape[0]
        return float(total) / max(count, 1)

    def validate(epoch: int) -> dict[str, float]:
        valid, valid_loss = _pass(view, attacker, splits["valid"], task,
                                  settings.eval_batch_size)
        test, _ = _pass(view, attacker, splits["test"], task, settings.eval_batch_size)
        return {"valid": valid, "valid_loss": valid_loss, "test": test}

    curve = fit_until_plateau(attacker, optimizer, train_epoch, validate, settings,
                              steps_per_epoch=max(len(train) // settings.batch_size, 1),
                              higher_is_better=task.higher_is_better, desc=f"{name} attacker")
    return summarise(name, task, curve,
                     test_outcomes(view, attacker, splits["test"], task, settings),
                     splits["test"])


def summarise(name: str, task: Task, curve: LearningCurve, outcomes: TestOutcomes,
              test: ImageSplit) -> LeakageResult:
    """A :class:`LeakageResult` from a finished curve and the test outcomes at its best epoch."""
    paper_record = curve.records[0]
    for record in curve.records[1:]:
        if better(record["test"], paper_record["test"], task.higher_is_better):
            paper_record = record
    return LeakageResult(
        attack="leakage", curve=curve, attacker=name, metric=task.metric_name,
        higher_is_better=task.higher_is_better, test=outcomes.mean, test_sd=outcomes.sd,
        test_draws=list(outcomes.draws), test_per_image=list(outcomes.per_image),
        valid=curve.best()["valid"], paper=paper_record["test"],
        paper_epoch=int(paper_record["epoch"]), last=curve.records[-1]["test"],
        chance=ChanceFigures.of(outcomes.mean, task, test),
    )


class LeakageAttack(Attack):
    """The paper's attack: a fresh copy of the defence's proxy adversary on frozen z."""

    name = "leakage"
    result_type = LeakageResult

    def run(self, target: AttackTarget, settings: AttackSettings) -> LeakageResult:
        if target.proxy is None or target.task is None:
            raise ValueError("the leakage attack needs a private task and the defence's proxy")
        torch.manual_seed(settings.seed)  # the attacker's initial weights
        attacker = target.proxy(target.task.num_outputs)
        return run_leakage_attack(target.view, attacker, target.splits, target.task, settings)


__all__ = ["ChanceFigures", "LeakageAttack", "LeakageResult", "TestOutcomes", "run_leakage_attack",
           "summarise", "test_outcomes"]
