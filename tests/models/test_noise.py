import pytest
import torch

from noisyarl.models import GaussianNoise, Obfuscator, resnet18_prefix


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
