"""Shredder: the learned per-channel noise grows with λ, is drawn afresh on every query (also in
eval mode and in the exported ONNX graph) and is invisible to the attacks' noise-module hook."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from noisyarl.deploy.export import (
    ExportedClient,
    client_for_export,
    noise_modules,
    noise_sources,
    onnx_bytes,
)
from noisyarl.methods import method_params
from noisyarl.methods.shredder import LearnedChannelNoise
from noisyarl.models.noise import measure_signal, noise_switched_off
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
SIDE = 16
#: Side of the training test's images (a few ResNet18 steps stay fast).
TRAIN_SIDE = 8


def _mean_log_scale_after(defence, tiny_batch, steps: int) -> float:
    optimizers = defence.configure_optimizers()
    images, utility_target, private_target = tiny_batch(side=TRAIN_SIDE)
    for _ in range(steps):
        values = defence.train_step(images, utility_target, private_target, optimizers, CPU)
    assert math.isfinite(float(values["noise_log_scale"]))
    return float(defence.client.noise.log_scale.detach().mean())


def test_the_noise_scale_grows_with_lambda(make_defence, tiny_batch):
    # λ large enough to outweigh the utility's own pull on a tiny batch: ρ steps by ~noise_lr.
    grown = _mean_log_scale_after(
        make_defence("shredder", image_size=TRAIN_SIDE, lambda_noise=50.0).train(), tiny_batch, 3)
    without = _mean_log_scale_after(
        make_defence("shredder", image_size=TRAIN_SIDE, lambda_noise=0.0).train(), tiny_batch, 3)
    assert grown > 0.02  # from log(1) = 0, three Adam steps of at most noise_lr = 0.01
    assert grown > without


def test_the_noise_is_fresh_per_query_with_each_channels_scale(make_defence):
    defence = make_defence("shredder", image_size=SIDE).eval()
    noise = defence.client.noise
    with torch.no_grad():
        noise.log_scale.copy_(torch.linspace(math.log(0.25), math.log(4.0), 64))
    images = torch.rand(32, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        first, second = defence.client(images), defence.client(images)
        with noise_switched_off(noise):
            h = defence.client(images)
    assert not torch.equal(first, second)
    per_channel = (first - h).transpose(0, 1).flatten(1).std(dim=1)  # [64]
    torch.testing.assert_close(per_channel, noise.scales(), rtol=0.05, atol=0)
    # normalize: h has unit RMS per sample, so the scales are in units of the features' RMS.
    torch.testing.assert_close(h.pow(2).mean(dim=(1, 2, 3)), torch.ones(32), rtol=1e-4, atol=0)


def test_the_attacks_see_a_random_client_without_a_noise_module(make_defence):
    defence = make_defence("shredder", image_size=SIDE)
    assert defence.noise_module() is None  # per-channel scales are no scalar σ
    assert not noise_modules(defence.client)
    assert noise_sources(defence.client) == [defence.client.noise]
    assert defence.client.noise.noise_std == pytest.approx(1.0)  # init_scale, every channel


def test_signal_stats_measure_the_noise_free_features_against_the_learned_scales(make_defence):
    defence = make_defence("shredder", image_size=SIDE, init_scale=2.0).train()
    images = torch.rand(8, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(2))
    stats = measure_signal(defence.client, defence.noise_module(), images)
    assert stats.rms == pytest.approx(1.0, rel=1e-4)  # normalised h, the noise switched off
    assert stats.sigma == pytest.approx(2.0)
    assert stats.sigma_eff == pytest.approx(2.0 / stats.between_sd)
    assert defence.client.noise.enabled and defence.training  # switched back, modes restored


def test_the_onnx_export_draws_the_learned_noise(make_defence, tmp_path):
    defence = make_defence("shredder", image_size=SIDE)
    client = defence.client
    with torch.no_grad():
        client.noise.log_scale.copy_(torch.linspace(math.log(0.5), math.log(2.0), 64))
    shape = (3, SIDE, SIDE)
    path = tmp_path / "shredder.onnx"
    metadata = {"noise": True, "input": {"shape": ["B", *shape]}, "output": {"shape": ["B"]}}
    path.write_bytes(onnx_bytes(client_for_export(client), shape, metadata))
    exported = ExportedClient(path)
    images = torch.rand(16, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = client_for_export(client, noise=False)(images).numpy()
    first, second = exported(images), exported(images)
    assert not np.array_equal(first, second)
    per_channel = (first - h).transpose(1, 0, 2, 3).reshape(64, -1).std(axis=1)
    np.testing.assert_allclose(per_channel, client.noise.scales().detach().numpy(), rtol=0.08)


def test_learned_noise_switched_off_adds_nothing():
    noise = LearnedChannelNoise(4, init_scale=2.0, normalize=False)
    h = torch.randn(2, 4, 3, 3)
    noise.enabled = False
    assert torch.equal(noise(h), h) and noise.noise_std == 0.0


@pytest.mark.parametrize(("key", "value"), [
    ("lambda_noise", -0.1), ("init_scale", 0.0), ("noise_lr", -1.0)])
def test_bad_params_are_refused(key, value):
    with pytest.raises(ValueError, match=key):
        method_params("shredder", {key: value})
