"""NoPeek: RN18_K trained on the utility loss plus α times the distance correlation of x and z."""

from __future__ import annotations

import pytest
import torch

from noisyarl.config import config_from_dict
from noisyarl.errors import ConfigError
from noisyarl.evaluation.dcor import distance_correlation
from noisyarl.methods import find_knob, method_params
from noisyarl.methods.nopeek import NoPeek
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
#: The ImageNet stem (4x downsampling) keeps the ResNet18 steps on 32 px images fast.
FAST = {"cifar_stem": False}


def _leakage(defence, images: torch.Tensor) -> float:
    """dCor(x, z) of the client as it trains (batch statistics), without touching its grads."""
    with torch.no_grad():
        return float(distance_correlation(images, defence.client(images)))


@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_train_step_gradient_is_utility_loss_plus_alpha_times_dcor(make_defence, tiny_batch,
                                                                    alpha):
    # alpha = 0 is a plain utility step: the dCor term is only logged.
    defence = make_defence("nopeek", alpha=alpha, **FAST).train()
    reference = make_defence("nopeek", alpha=alpha, **FAST).train()  # same seed: same weights
    images, utility_target, private_target = tiny_batch(size=8)
    z = reference.client(images)
    utility_loss = reference.spec.utility.loss(reference.utility_head(z), utility_target)
    leakage = distance_correlation(images, z)
    expected = torch.autograd.grad(utility_loss + alpha * leakage, list(reference.parameters()))
    values = defence.train_step(images, utility_target, private_target,
                                defence.configure_optimizers(), CPU)
    assert set(values) == {"utility_loss", "distance_correlation", "utility_correct"}
    assert float(values["utility_loss"]) == pytest.approx(float(utility_loss.detach()), rel=1e-6)
    assert float(values["distance_correlation"]) == pytest.approx(float(leakage.detach()), rel=1e-6)
    assert 0.0 < float(leakage.detach()) <= 1.0
    for parameter, gradient in zip(defence.parameters(), expected, strict=True):
        torch.testing.assert_close(parameter.grad, gradient, rtol=1e-5, atol=1e-7)


def test_a_few_steps_lower_the_distance_correlation_where_utility_alone_does_not(make_defence,
                                                                               tiny_batch):
    # At initialisation RN18_1's z is almost a linear map of x (dCor about 0.999); a large α
    # makes the penalty decide the sign of Adam's first updates, so its effect shows in 3 steps.
    images, utility_target, private_target = tiny_batch(size=8)
    before, after = {}, {}
    for alpha in (0.0, 100.0):
        defence = make_defence("nopeek", alpha=alpha, **FAST).train()  # the same initial weights
        optimizers = defence.configure_optimizers()
        before[alpha] = _leakage(defence, images)
        for _ in range(3):
            defence.train_step(images, utility_target, private_target, optimizers, CPU)
        after[alpha] = _leakage(defence, images)
    assert before[0.0] == before[100.0]
    assert after[100.0] < before[100.0] - 5e-4
    assert after[100.0] < after[0.0] - 5e-4


def test_no_noise_no_adversary_one_optimiser(make_defence):
    defence = make_defence("nopeek", split=2)
    optimizers = defence.configure_optimizers()
    assert list(optimizers) == ["main"] and defence.proxy_adversaries() == []
    assert {name for name, _ in defence.named_children()} == {"client", "utility_head"}
    assert defence.noise_module() is None
    facts = defence.describe()
    assert (facts["split"], facts["sigma"], facts["noise"]) == (2, 0.0, False)
    assert facts["params"] == {"alpha": 0.1, "lr": 1e-3}


def _config(method: dict):
    return config_from_dict({
        "name": "nopeek",
        "data": {"image_size": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "nopeek", "split": 2, **method},
    })


def test_config_takes_alpha_and_rejects_sigma_and_a_negative_alpha():
    assert _config({"params": {"alpha": 2}}).method.params == {"alpha": 2}
    with pytest.raises(ConfigError, match="nopeek has no noise module"):
        _config({"sigma": 0.5})
    with pytest.raises(ConfigError, match="alpha must be >= 0"):
        _config({"params": {"alpha": -0.1}})
    with pytest.raises(ValueError, match="method.params.alpha: expected a number"):
        method_params("nopeek", {"alpha": "high"})


def test_the_knob_is_alpha_from_mild_to_dominating():
    knob = find_knob("nopeek")
    assert knob.key == "params.alpha" and knob.symbol == "α"
    assert knob.grid == tuple(sorted(knob.grid)) and knob.grid[0] == NoPeek.Params().alpha
    for value in knob.grid:
        method_params("nopeek", {"alpha": value})  # every grid value is accepted
