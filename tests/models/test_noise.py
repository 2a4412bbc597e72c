import math

import pytest
import torch

from noisyarl.models import GaussianNoise, Obfuscator, resnet18_prefix
from noisyarl.models.noise import (
    NoiseFree,
    SignalStats,
    measure_signal,
    noise_switched_off,
    signal_stats,
)


def test_noise_is_present_in_eval_mode_and_has_sigma_std():
    torch.manual_seed(0)
    noise = GaussianNoise(sigma=3.0).eval()
    h = torch.zeros(64, 256, 4, 4)
    residual = noise(h) - h
    assert residual.mean().abs() < 0.05
    assert residual.std() == pytest.approx(3.0, rel=0.02)


def test_noise_is_fresh_on_every_call():
    noise = GaussianNoise(sigma=1.0)
    h = torch.zeros(2, 4)
    assert not torch.equal(noise(h), noise(h))


def test_noise_absent_only_when_switched_off():
    h = torch.randn(2, 8, 3, 3)
    assert torch.equal(GaussianNoise(sigma=5.0, enabled=False)(h), h)
    assert torch.equal(GaussianNoise(sigma=0.0)(h), h)


def test_obfuscator_adds_noise_at_inference():
    torch.manual_seed(0)
    obfuscator = Obfuscator(resnet18_prefix(2), GaussianNoise(sigma=10.0)).eval()
    x = torch.rand(4, 3, 48, 48)
    with torch.no_grad():
        h = obfuscator.features(x)
        z = obfuscator(x)
    assert z.shape == h.shape
    assert (z - h).std() == pytest.approx(10.0, rel=0.05)


def test_negative_sigma_is_rejected():
    with pytest.raises(ValueError, match="sigma"):
        GaussianNoise(sigma=-1.0)


def _sample_rms(z: torch.Tensor) -> torch.Tensor:
    return z.flatten(1).pow(2).mean(dim=1).sqrt()


def test_normalize_gives_every_sample_unit_rms_with_the_noise_switched_off():
    generator = torch.Generator().manual_seed(0)
    scales = torch.tensor([1e-3, 1.0, 50.0, 1e4]).view(4, 1, 1, 1)
    h = torch.randn(4, 8, 3, 3, generator=generator) * scales + 0.5 * scales
    for noise in (GaussianNoise(sigma=0.0, normalize=True),
                  GaussianNoise(sigma=4.0, enabled=False, normalize=True)):
        torch.testing.assert_close(_sample_rms(noise(h)), torch.ones(4), atol=1e-5, rtol=0)
    switchable = GaussianNoise(sigma=4.0, normalize=True)
    with noise_switched_off(switchable):
        torch.testing.assert_close(_sample_rms(switchable(h)), torch.ones(4), atol=1e-5, rtol=0)


def test_normalize_leaves_the_direction_of_each_sample_unchanged():
    h = torch.randn(3, 16)
    z = GaussianNoise(sigma=0.0, normalize=True)(h)
    torch.testing.assert_close(z * _sample_rms(h)[:, None], h)


def test_normalized_noise_has_std_sigma_on_top_of_the_unit_rms_features():
    torch.manual_seed(0)
    noise = GaussianNoise(sigma=2.0, normalize=True)
    h = 1000.0 * torch.randn(64, 32, 4, 4)
    residual = noise(h) - noise.signal(h)
    assert noise.active and residual.dtype == torch.float32
    assert residual.mean().abs() < 0.02
    assert residual.std() == pytest.approx(2.0, rel=0.02)


def test_gradients_flow_through_the_normalisation():
    h = torch.randn(2, 4, 3, 3, requires_grad=True)
    GaussianNoise(sigma=1.0, normalize=True)(h)[:, 0].sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all() and h.grad.abs().sum() > 0


def test_normalize_off_keeps_the_input_as_it_is():
    h = 7.0 * torch.randn(2, 8, 3, 3)
    noise = GaussianNoise(sigma=3.0, enabled=False)
    assert not noise.normalize and torch.equal(noise(h), h) and torch.equal(noise.signal(h), h)
    assert "normalize=False" in repr(noise) and "normalize=True" in repr(
        GaussianNoise(1.0, normalize=True))


def test_obfuscator_features_are_the_normalised_noise_free_output():
    torch.manual_seed(0)
    obfuscator = Obfuscator(resnet18_prefix(1), GaussianNoise(sigma=1.0, normalize=True)).eval()
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        h = obfuscator.features(x)
        torch.testing.assert_close(h, NoiseFree(obfuscator, obfuscator.noise)(x))
    torch.testing.assert_close(_sample_rms(h), torch.ones(3), atol=1e-5, rtol=0)


def test_signal_stats_measure_the_spread_between_images_not_the_offset():
    offsets = torch.tensor([1.0, 3.0, 5.0, 7.0])
    h = 100.0 + offsets.view(4, 1, 1, 1).expand(4, 2, 3, 3)  # a constant per image
    stats = signal_stats(h, sigma=4.0)
    assert stats.between_sd == pytest.approx(float(offsets.std(unbiased=False)))
    assert stats.rms == pytest.approx(float(h.pow(2).mean().sqrt()))
    assert stats.sigma_eff == pytest.approx(4.0 / float(offsets.std(unbiased=False)))
    assert stats.to_dict() == {"h_rms": stats.rms, "h_sd": stats.between_sd,
                               "sigma_eff": stats.sigma_eff}


def test_sigma_eff_of_no_noise_and_of_features_that_do_not_vary():
    assert SignalStats(rms=1.0, between_sd=0.5, sigma=2.0).sigma_eff == 4.0
    assert SignalStats(rms=1.0, between_sd=0.0, sigma=2.0).sigma_eff == math.inf
    assert SignalStats(rms=1.0, between_sd=0.0, sigma=0.0).sigma_eff == 0.0
    assert signal_stats(torch.ones(3, 5), sigma=1.0).sigma_eff == math.inf


def test_measure_signal_sees_the_noise_free_features_and_restores_train_mode():
    torch.manual_seed(0)
    obfuscator = Obfuscator(resnet18_prefix(1), GaussianNoise(sigma=5.0)).train()
    images = torch.rand(10, 3, 32, 32)
    stats = measure_signal(obfuscator, obfuscator.noise, images, batch_size=4)
    assert obfuscator.training and all(module.training for module in obfuscator.modules())
    obfuscator.eval()
    with torch.no_grad():
        expected = signal_stats(obfuscator.features(images), sigma=5.0)
    assert stats.rms == pytest.approx(expected.rms, rel=1e-5)
    assert stats.between_sd == pytest.approx(expected.between_sd, rel=1e-5)
    assert stats.sigma == 5.0 and stats.sigma_eff == pytest.approx(5.0 / expected.between_sd)
    assert measure_signal(obfuscator.extractor, None, images).sigma_eff == 0.0
