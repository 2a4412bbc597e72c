"""The noise-only ablation: noisy ARL's client and noise, trained for utility alone."""

from __future__ import annotations

import pytest
import torch

from noisyarl.methods import METHODS, method_params
from noisyarl.methods.noise_only import NoiseOnly, NoiseOnlyParams
from noisyarl.models.noise import GaussianNoise, NoiseFree
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
SIGMA = 2.0
#: The ImageNet stem (4x downsampling) keeps the ResNet18 steps on 32 px images fast.
FAST = {"cifar_stem": False}


def _shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_client_adds_noise_of_sigma_in_training_and_in_evaluation(make_defence, tiny_batch,
                                                                      mode):
    defence = make_defence("noise_only", sigma=SIGMA).train(mode == "train")
    noise = defence.noise_module()
    assert isinstance(noise, GaussianNoise) and noise.active
    images, _, _ = tiny_batch(size=8)
    with torch.no_grad():
        residual = defence.client(images) - NoiseFree(defence.client, noise)(images)
    assert float(residual.std()) == pytest.approx(SIGMA, rel=0.02)
    assert abs(float(residual.mean())) < 0.02 * SIGMA


def test_client_utility_head_and_attacker_are_noisy_arls(make_defence):
    ablation, noisy_arl = make_defence("noise_only"), make_defence("noisy_arl")
    assert _shapes(ablation.client) == _shapes(noisy_arl.client)
    assert _shapes(ablation.utility_head) == _shapes(noisy_arl.utility_head)
    assert _shapes(ablation.make_attacker(3)) == _shapes(noisy_arl.make_attacker(3))
    assert NoiseOnly.knobs == (noisy_arl.knobs[0],)  # the same σ grid


def test_there_is_no_adversary_and_one_optimiser_for_every_parameter(make_defence):
    defence = make_defence("noise_only")
    optimizers = defence.configure_optimizers()
    assert list(optimizers) == ["main"]
    assert defence.proxy_adversaries() == []
    assert {name for name, _ in defence.named_children()} == {"client", "utility_head"}
    stepped = {id(p) for group in optimizers["main"].param_groups for p in group["params"]}
    assert stepped == {id(p) for p in defence.parameters()}
    assert optimizers["main"].defaults["lr"] == 1e-3


def test_train_step_gradient_is_the_utility_loss_gradient_on_the_noisy_z(make_defence, tiny_batch):
    defence = make_defence("noise_only", sigma=SIGMA, **FAST).train()
    reference = make_defence("noise_only", sigma=SIGMA, **FAST).train()  # same weights
    images, utility_target, private_target = tiny_batch(size=8)
    torch.manual_seed(3)  # the same noise draw in both forward passes
    loss = defence.spec.utility.loss(reference.predict_utility(images), utility_target)
    expected = torch.autograd.grad(loss, list(reference.parameters()))
    torch.manual_seed(3)
    values = defence.train_step(images, utility_target, private_target,
                                defence.configure_optimizers(), CPU)
    assert set(values) == {"utility_loss", "utility_correct"}
    assert float(values["utility_loss"]) == pytest.approx(float(loss.detach()), rel=1e-6)
    for parameter, gradient in zip(defence.parameters(), expected, strict=True):
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-5, atol=1e-7)


def test_the_noise_changes_the_step_so_it_is_trained_with_noise(make_defence, tiny_batch):
    images, utility_target, private_target = tiny_batch(size=8)
    gradients = {}
    for sigma in (0.0, SIGMA):
        defence = make_defence("noise_only", sigma=sigma, **FAST).train()
        defence.train_step(images, utility_target, private_target,
                           defence.configure_optimizers(), CPU)
        gradients[sigma] = torch.cat([p.grad.flatten() for p in defence.client.parameters()])
    assert not torch.allclose(gradients[0.0], gradients[SIGMA])


def test_params_are_validated_and_normalize_reaches_the_noise_module(make_defence):
    assert make_defence("noise_only", normalize=True).noise_module().normalize
    assert not make_defence("noise_only").noise_module().normalize
    with pytest.raises(ValueError, match="lr must be > 0"):
        NoiseOnlyParams(lr=0.0)
    with pytest.raises(ValueError, match="beta2 must be in"):
        NoiseOnlyParams(beta2=1.0)
    with pytest.raises(ValueError, match="lambda_adv: unknown key for noise_only.*noisy_arl"):
        method_params("noise_only", {"lambda_adv": 0.1})  # noisy ARL's adversary weight
    assert METHODS["noise_only"] is NoiseOnly and NoiseOnly.has_noise and NoiseOnly.has_split
