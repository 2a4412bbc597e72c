"""The shared loop: per-epoch learning-rate schedules, their checkpointing and resume, and the
per-epoch signal-to-noise record (h_rms, h_sd, sigma_eff)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods.base import Defence, DefenceSpec
from noisyarl.models.noise import GaussianNoise, signal_stats
from noisyarl.runtime import StepContext
from noisyarl.training.checkpoint import load_checkpoint
from noisyarl.training.loop import LoopSettings, fit

BINARY = Task("y", LabelInfo(kind="binary"))


class _CosineDefence(Defence):
    """A linear probe on pooled pixels whose only optimiser follows a cosine schedule."""

    name = "cosine_probe"
    Params = dict

    def __init__(self) -> None:
        super().__init__(DefenceSpec(utility=BINARY, private=BINARY, split=1, sigma=0.0,
                                     noise=False, params={}, image_size=8))
        self.client = nn.AdaptiveAvgPool2d(1)
        self.utility_head = nn.Sequential(nn.Flatten(), nn.Linear(3, BINARY.num_outputs))

    def configure_optimizers(self):
        return {"main": torch.optim.SGD(self.utility_head.parameters(), lr=0.1)}

    def configure_schedulers(self, optimizers, epochs):
        return {"main": torch.optim.lr_scheduler.CosineAnnealingLR(optimizers["main"], epochs)}

    def train_step(self, images, utility_target, private_target, optimizers, context):
        out = self.utility_head(self.client(images))
        loss = BINARY.loss(out, utility_target)
        context.step(loss, optimizers["main"])
        score = BINARY.score_sum(out, utility_target)
        return {"utility_loss": loss.detach(), "utility_correct": score}

    def make_attacker(self, num_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(3, num_outputs))


def _splits() -> dict[str, ImageSplit]:
    generator = torch.Generator().manual_seed(0)
    def split(n):
        images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=generator)
        labels = {"y": torch.randint(0, 2, (n,), generator=generator)}
        return ImageSplit(images, labels, {"y": LabelInfo(kind="binary")})
    return {"train": split(32), "valid": split(16)}


def _settings(epochs: int) -> LoopSettings:
    return LoopSettings(epochs=epochs, batch_size=8, augment=False, progress=False)


def test_schedule_is_stepped_once_per_epoch_and_checkpointed(tmp_path):
    defence = _CosineDefence()
    fit(defence, _splits(), BINARY, BINARY, StepContext(torch.device("cpu")), _settings(4),
        tmp_path)
    state = load_checkpoint(tmp_path / "last.pt")
    assert state["schedulers"]["main"]["last_epoch"] == 4
    assert state["optimizers"]["main"]["param_groups"][0]["lr"] < 1e-12  # cosine reached 0


class _Interrupted(RuntimeError):
    pass


def test_resume_continues_the_schedule_where_it_stopped(tmp_path):
    """A 4-epoch run killed in epoch 3 and resumed ends with the uninterrupted run's weights and
    learning rate; without the restored schedule the learning rate would restart at 0.1."""
    context = StepContext(torch.device("cpu"))
    torch.manual_seed(0)
    whole = _CosineDefence()
    fit(whole, _splits(), BINARY, BINARY, context, _settings(4), tmp_path / "whole")

    torch.manual_seed(0)
    crashing = _CosineDefence()
    steps = 0
    original_step = crashing.train_step

    def step_then_crash(*args):
        nonlocal steps
        steps += 1
        if steps == 9:  # first step of epoch 3 (4 steps per epoch)
            raise _Interrupted
        return original_step(*args)

    crashing.train_step = step_then_crash
    with pytest.raises(_Interrupted):
        fit(crashing, _splits(), BINARY, BINARY, context, _settings(4), tmp_path / "cut")
    resumed = _CosineDefence()
    fit(resumed, _splits(), BINARY, BINARY, context, _settings(4), tmp_path / "cut", resume=True)

    final = load_checkpoint(tmp_path / "cut" / "last.pt")
    expected = load_checkpoint(tmp_path / "whole" / "last.pt")
    assert final["schedulers"]["main"] == expected["schedulers"]["main"]
    for name, value in expected["model"].items():
        torch.testing.assert_close(final["model"][name], value)


SIGMA = 0.5


class _NoisyProbe(_CosineDefence):
    """The cosine probe with a noise module (σ = 0.5) on its pooled pixels."""

    name = "noisy_probe"

    def __init__(self) -> None:
        super().__init__()
        self.client = nn.Sequential(nn.AdaptiveAvgPool2d(1), GaussianNoise(SIGMA))


class _Scalars:
    """A stand-in for TensorBoard's SummaryWriter that keeps what it is given."""

    def __init__(self) -> None:
        self.tags: dict[str, list[float]] = {}

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.tags.setdefault(tag, []).append(value)


def test_every_epoch_records_the_features_scale_against_sigma(tmp_path):
    splits, writer = _splits(), _Scalars()
    result = fit(_NoisyProbe(), splits, BINARY, BINARY, StepContext(torch.device("cpu")),
                 _settings(2), tmp_path, writer=writer)
    pooled = (splits["valid"].images.float() / 255).mean(dim=(2, 3))
    expected = signal_stats(pooled, SIGMA)  # the probe's client has no weights to train
    for record in result.history:
        assert record["h_sd"] > 0
        assert record["sigma_eff"] == pytest.approx(SIGMA / record["h_sd"])
        assert record["h_sd"] == pytest.approx(expected.between_sd, rel=1e-5)
        assert record["h_rms"] == pytest.approx(expected.rms, rel=1e-5)
    assert writer.tags["signal/sigma_eff"] == [r["sigma_eff"] for r in result.history]


def test_a_client_without_noise_module_records_sigma_eff_zero(tmp_path):
    result = fit(_CosineDefence(), _splits(), BINARY, BINARY, StepContext(torch.device("cpu")),
                 _settings(1), tmp_path)
    assert result.history[0]["sigma_eff"] == 0.0 and result.history[0]["h_sd"] > 0
