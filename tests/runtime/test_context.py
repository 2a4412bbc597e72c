"""The precision and memory-format switches: bf16 autocast and channels_last train on CPU;
fp16 is refused without CUDA, as a config error."""

from __future__ import annotations

import pytest
import torch

from noisyarl.builders import untrained_defence
from noisyarl.config import ConfigError, config_from_dict
from noisyarl.runners.experiment import run_experiment
from noisyarl.runtime import StepContext


def _defence_and_batch(context: StepContext):
    torch.manual_seed(0)  # binary tasks, default params, σ = 0, the CIFAR stem at 16 px
    defence = untrained_defence("noisy_arl", image_size=16, split=2)
    defence = context.prepare_module(defence).train()
    generator = torch.Generator().manual_seed(1)
    images = context.prepare_images(torch.rand(8, 3, 16, 16, generator=generator))
    labels = torch.randint(0, 2, (8,), generator=generator)
    return defence, images, labels


def test_bf16_channels_last_step_trains_in_fp32_weights_with_losses_close_to_fp32():
    values = {}
    for precision, channels_last in (("fp32", False), ("bf16", True)):
        context = StepContext(torch.device("cpu"), precision, channels_last)
        defence, images, labels = _defence_and_batch(context)
        before = {k: v.clone() for k, v in defence.state_dict().items()}
        optimizers = defence.configure_optimizers()
        values[precision] = defence.train_step(images, labels, labels, optimizers, context)
        assert images.is_contiguous(memory_format=torch.channels_last) == channels_last
        conv = defence.client.extractor[0].weight
        assert conv.dtype == torch.float32  # autocast: weights and optimiser states stay fp32
        assert conv.is_contiguous(memory_format=torch.channels_last) == channels_last
        moved = [k for k, v in defence.state_dict().items()
                 if v.is_floating_point() and not torch.equal(v, before[k])]
        assert any(k.startswith("client.") for k in moved)
        assert any(k.startswith("adversary.") for k in moved)
    assert all(torch.isfinite(value) for value in values["bf16"].values())
    # Before any update (sigma 0: noise drawn in bf16 is another draw), same weights and
    # batch: bf16 rounds, it does not change the objective. (The adversary's loss comes after
    # the obfuscator's Adam step, about lr * sign(grad) at first, so it is not comparable.)
    assert float(values["bf16"]["utility_loss"]) == pytest.approx(
        float(values["fp32"]["utility_loss"]), rel=0.02)


def test_fp16_without_cuda_is_refused():
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        StepContext(torch.device("cpu"), "fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 is allowed where CUDA is")
def test_fp16_on_a_cpu_run_is_a_config_error(tiny_celeba_root, tmp_path):
    config = config_from_dict({
        "data": {"dataset": "celeba", "root": str(tiny_celeba_root), "image_size": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "train": {"epochs": 1, "precision": "fp16", "device": "cpu", "progress": False},
    })
    with pytest.raises(ConfigError, match="train.precision: precision fp16 needs a CUDA"):
        run_experiment(config, tmp_path / "run")


def test_joint_step_sends_each_loss_into_its_own_optimisers_parameters_only():
    # z = client(x); the client descends loss_a = (head(z) - 1)^2 - adversary(z)^2, the
    # adversary descends loss_b = adversary(z)^2, both from one forward pass.
    torch.manual_seed(0)
    client, head, adversary = (torch.nn.Linear(3, 3), torch.nn.Linear(3, 1),
                               torch.nn.Linear(3, 1))
    main = torch.optim.SGD([*client.parameters(), *head.parameters()], lr=0.1)
    own = torch.optim.SGD(adversary.parameters(), lr=0.1)
    x = torch.randn(8, 3)
    z = client(x)
    loss_b = adversary(z).pow(2).mean()
    loss_a = (head(z) - 1).pow(2).mean() - loss_b
    expected_main = torch.autograd.grad(loss_a, [*client.parameters(), *head.parameters()],
                                        retain_graph=True)
    expected_own = torch.autograd.grad(loss_b, list(adversary.parameters()), retain_graph=True)
    StepContext(torch.device("cpu")).joint_step([(loss_a, main), (loss_b, own)])
    got_main = [p.grad for p in (*client.parameters(), *head.parameters())]
    got_own = [p.grad for p in adversary.parameters()]
    for got, expected in zip([*got_main, *got_own], [*expected_main, *expected_own],
                             strict=True):
        torch.testing.assert_close(got, expected)


def test_channels_last_auto_follows_the_measured_crossover():
    from noisyarl.runtime import resolve_channels_last
    from noisyarl.runtime.device import CHANNELS_LAST_MIN_SIZE

    assert resolve_channels_last("auto", 178) and not resolve_channels_last("auto", 64)
    assert resolve_channels_last("auto", CHANNELS_LAST_MIN_SIZE)
    assert resolve_channels_last(True, 32) and not resolve_channels_last(False, 178)
    with pytest.raises(ValueError, match="auto"):
        resolve_channels_last("yes", 64)
