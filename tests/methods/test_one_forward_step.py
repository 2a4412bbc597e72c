"""Every adversarial defence updates client and proxy adversaries from one forward pass
(:func:`noisyarl.methods.adversary.adversarial_update`), and that update equals the two-pass step
it replaced: client step first, then each adversary again on ``z.detach()``.

The two-pass references below are the defences' earlier train steps, written out with plain
``backward()`` so that they share nothing with the code under test.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from noisyarl.builders import untrained_defence
from noisyarl.methods import Defence
from noisyarl.methods.deep_obfuscator import reconstruction_error
from noisyarl.methods.disco import apply_channel_mask, frozen_running_statistics
from noisyarl.methods.maxent import predictive_entropy
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
SIDE = 32
BATCH = 6


def _plain_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _adversary_again(adversary: torch.nn.Module, z: torch.Tensor,
                     loss: Callable[[torch.Tensor], torch.Tensor],
                     optimizer: torch.optim.Optimizer) -> None:
    _plain_step(loss(adversary(z.detach())), optimizer)


def _two_pass_noisy_arl(defence, images, utility_target, private_target, optimizers):
    spec = defence.spec
    z = defence.client(images)
    client_loss = (spec.utility.loss(defence.utility_head(z), utility_target)
                   - spec.params.lambda_adv * spec.private.loss(defence.adversary(z),
                                                                private_target))
    _plain_step(client_loss, optimizers["main"])
    _adversary_again(defence.adversary, z, lambda out: spec.private.loss(out, private_target),
                     optimizers["adversary"])


def _two_pass_maxent(defence, images, utility_target, private_target, optimizers):
    spec, alpha = defence.spec, defence.spec.params.alpha
    z = defence.client(images)
    entropy = predictive_entropy(defence.adversary(z), spec.private.kind).mean()
    client_loss = ((1 - alpha) * spec.utility.loss(defence.utility_head(z), utility_target)
                   - alpha * entropy)
    _plain_step(client_loss, optimizers["main"])
    _adversary_again(defence.adversary, z, lambda out: spec.private.loss(out, private_target),
                     optimizers["adversary"])


def _two_pass_deep_obfuscator(defence, images, utility_target, private_target, optimizers):
    spec, params = defence.spec, defence.spec.params
    z = defence.client(images)
    client_loss = (spec.utility.loss(defence.utility_head(z), utility_target)
                   - params.lambda1 * spec.private.loss(defence.adversary(z), private_target)
                   - params.lambda2 * reconstruction_error(defence.reconstructor(z), images))
    _plain_step(client_loss, optimizers["main"])
    _adversary_again(defence.adversary, z, lambda out: spec.private.loss(out, private_target),
                     optimizers["adversary"])
    _adversary_again(defence.reconstructor, z, lambda out: reconstruction_error(out, images),
                     optimizers["reconstructor"])


def _two_pass_disco(defence, images, utility_target, private_target, optimizers):
    alpha = defence.spec.params.alpha
    encoder, pruner = defence.client.encoder, defence.client.pruner
    z = encoder(images)
    utility_out = defence.utility_head(
        apply_channel_mask(z, pruner.mask(z, parameter_gradient_scale=1.0 - alpha)))
    with frozen_running_statistics(pruner):
        pruned = apply_channel_mask(z.detach(), pruner.mask(z.detach()))
    proxy = defence.proxy_loss(defence.adversary(pruned), images, private_target)
    _plain_step(defence.spec.utility.loss(utility_out, utility_target) - alpha * proxy,
                optimizers["main"])
    _adversary_again(defence.adversary, pruned,
                     lambda out: defence.proxy_loss(out, images, private_target),
                     optimizers["adversary"])


TWO_PASS = {"noisy_arl": _two_pass_noisy_arl, "maxent_arl": _two_pass_maxent,
            "deep_obfuscator": _two_pass_deep_obfuscator, "disco": _two_pass_disco}


def _defence(method: str) -> Defence:
    torch.manual_seed(0)
    defence = untrained_defence(method, SIDE, split=2, sigma=0.5)
    if method == "noisy_arl":
        defence.spec.params.lambda_adv = 0.5  # a visible adversarial term
    for module in defence.modules():
        if isinstance(module, torch.nn.Dropout):
            # The two-pass step drew a second dropout mask for the adversary's own update; the
            # one-forward step reuses the client's. Equal updates need no dropout.
            module.p = 0.0
    return defence.train()


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(BATCH, 3, SIDE, SIDE, generator=generator)
    return (images, torch.randint(0, 2, (BATCH,), generator=generator),
            torch.randint(0, 2, (BATCH,), generator=generator))


@pytest.mark.parametrize("method", sorted(TWO_PASS))
def test_one_forward_update_equals_the_two_pass_update(method):
    one, two = _defence(method), _defence(method)
    one_optimizers, two_optimizers = one.configure_optimizers(), two.configure_optimizers()
    images, utility_target, private_target = _batch()
    for step in range(2):  # the second step also compares the optimisers' moments
        torch.manual_seed(10 + step)  # the same noise draw on both sides
        one.train_step(images, utility_target, private_target, one_optimizers, CPU)
        torch.manual_seed(10 + step)
        TWO_PASS[method](two, images, utility_target, private_target, two_optimizers)
    moved = 0
    for (name, after_one), after_two in zip(one.named_parameters(), two.parameters(),
                                            strict=True):
        torch.testing.assert_close(after_one, after_two, rtol=1e-5, atol=1e-6, msg=name)
        moved += 1
    assert moved == len(list(one.parameters()))


@pytest.mark.parametrize("method", sorted(TWO_PASS))
def test_one_forward_update_counts_each_batch_once_in_the_adversarys_batch_norm(method):
    defence = _defence(method)
    defence.train_step(*_batch(), defence.configure_optimizers(), CPU)
    counters = [int(module.num_batches_tracked) for module in defence.adversary.modules()
                if isinstance(module, torch.nn.modules.batchnorm._BatchNorm)]
    assert counters and set(counters) == {1}
