"""The image-space baselines: what each transform does to an image, and that the exported ONNX
client applies the same transform (the contract in ``test_contract.py`` covers training, the
attacker, describe and the noise hook)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisyarl.deploy.export import ExportedClient, client_for_export, onnx_bytes
from noisyarl.methods import METHODS, method_params
from noisyarl.methods.image_space import GaussianBlur, Pixelate, gaussian_kernel_1d
from noisyarl.models.noise import NoiseFree

SIDE = 16


def _images(side: int = SIDE, size: int = 4, seed: int = 0) -> torch.Tensor:
    return torch.rand(size, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _high_frequency_energy(images: torch.Tensor) -> float:
    """Mean squared difference of horizontally and vertically adjacent pixels."""
    across = images[..., :, 1:] - images[..., :, :-1]
    down = images[..., 1:, :] - images[..., :-1, :]
    return float(across.pow(2).mean() + down.pow(2).mean())


def test_blur_with_sigma_zero_or_tiny_is_the_identity():
    images = _images()
    assert torch.equal(GaussianBlur(0.0, SIDE)(images), images)
    assert torch.allclose(GaussianBlur(1e-3, SIDE)(images), images, atol=1e-6)


def test_blur_kernel_is_normalised_and_symmetric():
    kernel = gaussian_kernel_1d(2.0, 6)
    assert kernel.shape == (13,)
    assert float(kernel.sum()) == pytest.approx(1.0, abs=1e-6)
    assert torch.equal(kernel, kernel.flip(0))


def test_blur_keeps_a_constant_image_and_the_mean_and_removes_high_frequencies():
    constant = torch.full((2, 3, SIDE, SIDE), 0.3)
    assert torch.allclose(GaussianBlur(2.0, SIDE)(constant), constant, atol=1e-6)
    images = _images()
    blurred = GaussianBlur(2.0, SIDE)(images)
    assert blurred.shape == images.shape
    # Reflect padding keeps the mean only approximately (edge pixels weigh a little more).
    assert torch.allclose(blurred.mean(dim=(2, 3)), images.mean(dim=(2, 3)), atol=0.02)
    assert _high_frequency_energy(blurred) < 0.1 * _high_frequency_energy(images)
    stronger = GaussianBlur(4.0, SIDE)(images)
    assert _high_frequency_energy(stronger) < _high_frequency_energy(blurred)


def test_blur_radius_is_capped_below_the_image_side():
    blur = GaussianBlur(50.0, SIDE)  # 3σ = 150 px: reflect padding needs a radius below 16
    assert blur.radius == SIDE - 1
    assert blur(_images()).shape == (4, 3, SIDE, SIDE)


def test_pixelate_with_block_one_is_the_identity():
    images = _images()
    assert torch.equal(Pixelate(1)(images), images)


def test_pixelate_gives_constant_blocks_holding_the_block_means():
    images = _images()
    pixelated = Pixelate(4)(images)
    blocks = pixelated.unfold(2, 4, 4).unfold(3, 4, 4)  # [B, 3, 4, 4, 4, 4]
    means = images.unfold(2, 4, 4).unfold(3, 4, 4).mean(dim=(-2, -1))
    assert torch.allclose(blocks, means[..., None, None].expand_as(blocks), atol=1e-6)


def test_pixelate_averages_only_the_real_pixels_of_an_overhanging_block():
    images = _images(side=18)  # 18 = 4 + 4 + 4 + 4 + 2: the last blocks are 2 px wide
    pixelated = Pixelate(4)(images)
    assert pixelated.shape == images.shape
    corner = images[:, :, 16:, 16:].mean(dim=(2, 3))
    assert torch.allclose(pixelated[:, :, 16:, 16:], corner[..., None, None].expand(-1, -1, 2, 2),
                          atol=1e-6)


def test_pixel_noise_adds_fresh_zero_mean_noise_of_std_sigma(make_defence):
    defence = make_defence("pixel_noise", sigma=0.3, image_size=32).eval()
    images = _images(side=32, size=8)
    with torch.no_grad():
        first, second = defence.client(images), defence.client(images)
    residual = first - images
    assert float(residual.std()) == pytest.approx(0.3, rel=0.05)
    assert abs(float(residual.mean())) < 0.01
    assert not torch.equal(first, second)  # fresh per call, also in eval mode
    noise = defence.noise_module()
    assert noise is defence.client.noise and noise.sigma == 0.3
    assert torch.equal(NoiseFree(defence.client, noise)(images), images)


def test_pixel_noise_switched_off_sends_the_image(make_defence):
    defence = make_defence("pixel_noise", sigma=0.3, noise=False).eval()
    images = _images(side=32)
    assert torch.equal(defence.client(images), images)


def test_the_servers_see_the_transformed_image(make_defence):
    defence = make_defence("pixelate", block_size=2, image_size=SIDE).eval()
    images = _images()
    with torch.no_grad():
        z = defence.client(images)
        assert z.shape == images.shape
        assert defence.make_attacker(3)(z).shape == (4, 3)
        assert torch.equal(defence.predict_utility(images), defence.utility_head(z))


@pytest.mark.parametrize(("name", "values"), [
    ("blur", {"blur_sigma": -1.0}), ("pixelate", {"block_size": 0}),
    ("pixelate", {"block_size": 2.5}), ("pixel_noise", {"lr": 0.0})])
def test_bad_knob_values_are_refused(name, values):
    with pytest.raises(ValueError, match=next(iter(values))):
        method_params(name, values)


def test_image_space_baselines_are_registered_with_their_knobs():
    assert [METHODS[name].knobs[0].key for name in ("blur", "pixelate", "pixel_noise")] == [
        "params.blur_sigma", "params.block_size", "sigma"]
    for name in ("blur", "pixelate", "pixel_noise"):
        cls = METHODS[name]
        assert cls.obfuscates and not cls.has_split and cls.fixed_split is None
        assert cls.has_noise == (name == "pixel_noise")


def _exported(client: torch.nn.Module, side: int, tmp_path) -> ExportedClient:
    shape = (3, side, side)
    metadata = {"noise": True, "input": {"shape": ["B", *shape]}, "output": {"shape": ["B"]}}
    path = tmp_path / "client.onnx"
    path.write_bytes(onnx_bytes(client_for_export(client), shape, metadata))
    return ExportedClient(path)


@pytest.mark.parametrize(("name", "params", "side"), [
    ("blur", {"blur_sigma": 1.5}, SIDE), ("pixelate", {"block_size": 4}, 18)])
def test_onnx_export_reproduces_the_noise_free_transforms(name, params, side, make_defence,
                                                          tmp_path):
    client = make_defence(name, image_size=side, **params).client
    images = _images(side=side, size=3)
    exported = _exported(client, side, tmp_path)
    with torch.no_grad():
        expected = client(images).numpy()
    np.testing.assert_allclose(exported(images), expected, atol=1e-5, rtol=0)


def test_onnx_export_keeps_the_pixel_noise_inside(make_defence, tmp_path):
    client = make_defence("pixel_noise", sigma=0.2, image_size=SIDE).client
    images = _images(size=16)
    exported = _exported(client, SIDE, tmp_path)
    first, second = exported(images), exported(images)
    residual = first - images.numpy()
    assert float(residual.std()) == pytest.approx(0.2, rel=0.05)
    assert abs(float(residual.mean())) < 0.01
    assert not np.array_equal(first, second)
