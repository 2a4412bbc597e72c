"""The "RN18" upper bound: the image itself is sent, a whole ResNet18 per task on raw images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.methods.upper_bound import UpperBound, UpperBoundParams
from noisyarl.models import resnet18_suffix
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))


def _architecture(module: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in module.named_parameters()]


def test_the_client_sends_the_image_itself_and_costs_nothing(make_defence, tiny_batch):
    defence = make_defence("upper_bound").eval()
    images, _, _ = tiny_batch()
    assert torch.equal(defence.client(images), images)
    assert not UpperBound.obfuscates
    cost = measure_client_cost(defence.client, tuple(images.shape[1:]))
    assert (cost.params, cost.flops) == (0, 0)


def test_utility_head_and_attacker_are_whole_resnet18s_on_raw_images(make_defence, tiny_batch,
                                                                     tasks):
    defence = make_defence("upper_bound", utility=tasks.multiclass).eval()
    images, _, _ = tiny_batch(utility=tasks.multiclass)
    whole = resnet18_suffix(0, tasks.multiclass.num_outputs, cifar_stem=True)
    assert _architecture(defence.utility_head) == _architecture(whole)
    attacker = defence.make_attacker(tasks.multiclass.num_outputs)
    assert _architecture(attacker) == _architecture(whole)  # the same model, for the private task
    with torch.no_grad():
        assert defence.predict_utility(images).shape == (len(images), 3)
        assert attacker.eval()(defence.client(images)).shape == (len(images), 3)


def test_train_step_moves_only_the_utility_head_with_its_own_loss(make_defence, tiny_batch):
    defence = make_defence("upper_bound", lr=0.01).train()
    optimizers = defence.configure_optimizers()
    assert list(optimizers) == ["main"]
    assert optimizers["main"].param_groups[0]["lr"] == 0.01
    assert not hasattr(defence, "adversary")
    images, utility_target, private_target = tiny_batch()
    before = [p.detach().clone() for p in defence.utility_head.parameters()]
    values = defence.train_step(images, utility_target, private_target, optimizers, CPU)
    assert set(values) == {"utility_loss", "utility_correct"}
    assert any(not torch.equal(a, b)
               for a, b in zip(before, defence.utility_head.parameters(), strict=True))


def test_describe_says_nothing_is_obfuscated_no_split_no_noise(make_defence):
    # Built from a spec that carries a split, σ and the noise switch, all meaningless here.
    defence = make_defence("upper_bound", split=3, noise=True)
    assert defence.describe() == {
        "method": "upper_bound", "display_name": "RN18 (upper bound)", "obfuscates": False,
        "split": None, "sigma": 0.0, "noise": False, "params": {"lr": 1e-3}}
    assert defence.noise_module() is None
    assert not UpperBound.has_split and not UpperBound.has_noise


@pytest.mark.parametrize("lr", [0.0, -1e-3])
def test_a_non_positive_learning_rate_is_rejected(lr):
    with pytest.raises(ValueError, match="lr must be > 0"):
        UpperBoundParams(lr=lr)
