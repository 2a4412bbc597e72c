"""The shared attack loop: early stopping on a validation plateau, the best state kept, the
budget floor, and a constant predictor reported as not learning."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from noisyarl.attacks.base import (
    AttackSettings,
    ImageRecovery,
    LearningCurve,
    fit_until_plateau,
    strongest_recovery,
)
from noisyarl.attacks.leakage import LeakageResult, run_leakage_attack
from noisyarl.attacks.view import ZView
from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))


def _scripted(scores: list[float], losses: list[float], settings: AttackSettings,
              steps_per_epoch: int = 10):
    """Run the loop on a one-parameter model whose weight is set to the epoch number, with
    validation figures read from the script."""
    model = nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    def train_epoch(epoch: int) -> float:
        with torch.no_grad():
            model.weight.fill_(float(epoch))
        return 1.0 / epoch

    def validate(epoch: int) -> dict[str, float]:
        return {"valid": scores[epoch - 1], "valid_loss": losses[epoch - 1]}

    curve = fit_until_plateau(model, optimizer, train_epoch, validate, settings,
                              steps_per_epoch=steps_per_epoch, higher_is_better=True)
    return model, curve


def test_training_stops_on_a_plateau_and_keeps_the_best_validation_state():
    scores = [50, 60, 70, 65, 64, 63, 62, 61, 60, 59, 58, 57]
    losses = [0.9, 0.8, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0, 1.1, 1.2, 1.3]
    model, curve = _scripted(scores, losses, AttackSettings(max_epochs=12, patience=3))
    assert curve.stopped_early and curve.epochs_run == 6  # epochs 4, 5, 6 without progress
    assert curve.best_epoch == 3 and curve.best()["valid"] == 70
    assert float(model.weight.detach()) == 3.0, "the model is back in its best-validation state"
    assert [record["valid"] for record in curve.records] == scores[:6]
    assert LearningCurve.from_dict(curve.to_dict()) == curve


def test_a_falling_validation_loss_keeps_a_slow_attacker_training():
    """Noise slows attackers: while the validation loss still falls, a flat accuracy is no
    plateau."""
    scores = [50.0] * 8 + [55.0, 56.0]
    losses = [1.0 - 0.05 * epoch for epoch in range(10)]
    _, curve = _scripted(scores, losses, AttackSettings(max_epochs=10, patience=2))
    assert not curve.stopped_early and curve.epochs_run == 10 and curve.best_epoch == 10


def test_the_ceiling_is_raised_to_the_defence_budget():
    settings = AttackSettings(max_epochs=2, min_steps=95)
    assert settings.epoch_ceiling(steps_per_epoch=10) == 10
    assert AttackSettings(max_epochs=20, min_steps=95).epoch_ceiling(10) == 20
    flat = [50.0] * 12
    _, curve = _scripted(flat, [1.0] * 12, AttackSettings(max_epochs=2, min_steps=40,
                                                          patience=20), steps_per_epoch=10)
    assert curve.ceiling == 4 and curve.epochs_run == 4


class _ConstantLogit(nn.Module):
    """Always predicts the positive class; its one parameter gets no gradient signal."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.full((z.shape[0], 1), 5.0) + 0.0 * self.unused


def _split(count: int, positives: int, seed: int) -> ImageSplit:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.zeros(count, dtype=torch.long)
    labels[:positives] = 1
    images = torch.randint(0, 256, (count, 3, 8, 8), dtype=torch.uint8, generator=generator)
    return ImageSplit(images=images, labels={"y": labels},
                      label_info={"y": LabelInfo(kind="binary")})


def test_a_constant_predictor_is_reported_as_not_learning_with_advantage_zero():
    splits = {"train": _split(64, 40, 0), "valid": _split(40, 25, 1), "test": _split(200, 130, 2)}
    task = Task("y", LabelInfo(kind="binary"))
    view = ZView(nn.Flatten(1), CPU, features=nn.Flatten(1))
    result = run_leakage_attack(view, _ConstantLogit(), splits, task,
                                AttackSettings(max_epochs=3, patience=1, batch_size=16))
    assert result.test == pytest.approx(65.0) and result.chance.chance == pytest.approx(65.0)
    assert result.chance.advantage == pytest.approx(0.0)
    assert result.chance.learned is False
    assert LeakageResult.from_dict(result.to_dict()) == result


def _recovery(attack, psnr, baseline):
    return ImageRecovery(attack, psnr=psnr, ssim=0.5, psnr_baseline=baseline, ssim_baseline=0.4,
                         learned=psnr > baseline)


def test_the_strongest_reconstruction_is_the_largest_gain_over_its_own_mean_image():
    # The decoder scores every test image, input optimisation the first few: a higher PSNR on
    # easier images is not a stronger attack, the gain over the same images' mean image is.
    decoder = _recovery("reconstruction", psnr=18.0, baseline=13.0)
    white_box = _recovery("white_box", psnr=19.0, baseline=15.5)
    black_box = _recovery("black_box", psnr=14.0, baseline=15.5)
    assert strongest_recovery([white_box, decoder, black_box]) is decoder
    assert decoder.gain_db == pytest.approx(5.0)
    assert strongest_recovery([black_box]) is black_box
    assert strongest_recovery([]) is None


@given(st.lists(st.tuples(st.floats(0, 60), st.floats(0, 60)), min_size=1, max_size=6))
def test_no_recovery_gains_more_than_the_strongest(pairs):
    recoveries = [_recovery(f"a{i}", psnr, base) for i, (psnr, base) in enumerate(pairs)]
    strongest = strongest_recovery(recoveries)
    assert all(recovery.gain_db <= strongest.gain_db for recovery in recoveries)
