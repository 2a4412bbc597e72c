"""Input optimisation (white box and black box): the loss is the noise's negative
log-likelihood plus total variation, it recovers images through a noise-free client, and its
reconstructions degrade as σ grows."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisyarl.attacks.base import AttackSettings
from noisyarl.attacks.black_box import BlackBoxAttack, BlackBoxOptions, SurrogateClient
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.attacks.white_box import (
    InversionOptions,
    WhiteBoxAttack,
    invert,
    likelihood_weight,
    total_variation,
)
from noisyarl.builders import untrained_defence
from noisyarl.data.registry import load_splits
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
SIZE = 16
SETTINGS = AttackSettings(noise_draws=1, seed=0)


@pytest.fixture(scope="module")
def splits(tiny_celeba_root):
    return load_splits("celeba", tiny_celeba_root, SIZE)


def identity_target(splits, sigma: float) -> AttackTarget:
    """A client that sends the image itself plus N(0, σ²) noise per pixel (z = x + σ·ε)."""
    view = ZView(nn.Identity(), CPU, features=nn.Identity(), noise_std=sigma)
    return AttackTarget(view=view, splits=splits, task=None, image_size=SIZE)


def test_the_loss_weights_are_the_gaussian_likelihood_and_total_variation():
    assert likelihood_weight(0.5) == pytest.approx(2.0)  # 1 / (2 σ²)
    assert likelihood_weight(0.0) == 1.0  # σ = 0: plain squared error
    flat = torch.full((2, 3, 4, 4), 0.3)
    assert total_variation(flat).tolist() == [0.0, 0.0]
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:] = 1.0  # one vertical edge of height 4: 4 column differences of 1
    assert total_variation(step).tolist() == [4.0]


def test_invert_fits_z_through_a_noise_free_identity_and_stays_in_the_unit_cube():
    torch.manual_seed(0)
    target = torch.rand(4, 3, 8, 8)
    start = torch.full_like(target, 0.5)
    recovered = invert(nn.Identity(), target, start, noise_std=0.0, tv_weight=0.0, steps=150,
                       lr=0.05)
    assert (recovered - target).abs().max() < 1e-2
    outside = target * 3 - 1  # z beyond [0, 1]: x is clamped
    clamped = invert(nn.Identity(), outside, start, noise_std=0.0, tv_weight=0.0, steps=50,
                     lr=0.05)
    assert clamped.min() >= 0 and clamped.max() <= 1


def test_white_box_recovers_images_without_noise_and_degrades_as_sigma_grows(splits):
    options = InversionOptions(steps=120, valid_images=8, test_images=16,
                               tv_weights=[0.0, 0.3, 3.0])
    results = {sigma: WhiteBoxAttack(options).run(identity_target(splits, sigma), SETTINGS)
               for sigma in (0.0, 0.2, 0.8)}
    noise_free = results[0.0]
    assert noise_free.psnr > 35 and noise_free.learned and noise_free.psnr_gain.low > 15
    assert noise_free.psnr > results[0.2].psnr > results[0.8].psnr
    assert results[0.2].psnr > results[0.2].baseline.psnr
    assert results[0.8].noise_std == 0.8 and results[0.0].test_images == 16
    assert len(noise_free.valid_psnr) == 3 and noise_free.tv_weight in options.tv_weights
    assert noise_free.reconstructions.shape == (8, 3, SIZE, SIZE)


class _Blind(nn.Module):
    """A client whose z carries nothing about the image (z = 0 · x)."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images * 0.0


def test_an_attack_that_stays_at_the_mean_image_did_not_learn(splits):
    view = ZView(_Blind(), CPU, features=_Blind())
    target = AttackTarget(view=view, splits=splits, task=None, image_size=SIZE)
    options = InversionOptions(steps=20, valid_images=4, test_images=16, tv_weights=[0.0])
    result = WhiteBoxAttack(options).run(target, SETTINGS)
    assert result.psnr == pytest.approx(result.baseline.psnr, abs=1e-3)
    assert result.psnr_gain.n == 16 and result.psnr_gain.mean == pytest.approx(0.0, abs=1e-3)
    assert result.learned is False and result.image_recovery().learned is False
    assert type(result).from_dict(result.to_dict()).psnr_gain == result.psnr_gain


def test_averaging_queries_helps_the_white_box_attacker(splits):
    options = dict(steps=120, valid_images=8, test_images=16, tv_weights=[0.0, 0.3, 3.0])
    single = WhiteBoxAttack(InversionOptions(**options)).run(identity_target(splits, 0.8),
                                                             SETTINGS)
    averaged = WhiteBoxAttack(InversionOptions(**options, queries=16)).run(
        identity_target(splits, 0.8), SETTINGS)
    assert averaged.noise_std == pytest.approx(0.2) and averaged.queries == 16
    assert averaged.psnr > single.psnr + 3


def test_white_box_inverts_an_untrained_rn18_1_client_far_better_than_the_mean(splits):
    torch.manual_seed(0)
    defence = untrained_defence("noisy_arl", SIZE, split=1, sigma=0.0)
    view = ZView.of(defence.client, defence.noise_module(), CPU, splits["test"])
    target = AttackTarget(view=view, splits=splits, task=None, image_size=SIZE)
    result = WhiteBoxAttack(InversionOptions(steps=40, valid_images=2, test_images=4,
                                             tv_weights=[0.0])).run(target, SETTINGS)
    assert result.psnr > result.baseline.psnr + 8


def test_the_surrogate_takes_the_layout_of_z():
    images = torch.rand(2, 3, 32, 32)
    assert SurrogateClient(32, (128, 4, 4))(images).shape == (2, 128, 4, 4)
    assert SurrogateClient(32, (64, 32, 32))(images).shape == (2, 64, 32, 32)
    assert SurrogateClient(32, (10,))(images).shape == (2, 10)


def test_black_box_learns_a_surrogate_from_queries_and_inverts_through_it(splits):
    options = BlackBoxOptions(steps=60, valid_images=4, test_images=8, tv_weights=[0.0],
                              fraction=0.5)
    settings = AttackSettings(max_epochs=8, patience=3, lr=3e-3, batch_size=16, noise_draws=1)
    result = BlackBoxAttack(options).run(identity_target(splits, 0.0), settings)
    assert result.surrogate.attacker_images == round(len(splits["train"]) / 2)
    first, best = result.curve.records[0]["valid"], result.curve.best()["valid"]
    assert best < first / 2, "the surrogate learned from the queries"
    assert result.psnr > result.baseline.psnr
