"""DISCO: the soft channel mask and who learns from which loss."""

import copy

import pytest
import torch

from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods.base import DefenceSpec
from noisyarl.methods.disco import (
    ChannelPruner,
    Disco,
    DiscoParams,
    pruned_channel_count,
    soft_channel_mask,
)
from noisyarl.models import resnet18_suffix
from noisyarl.runtime import StepContext

SMILING = Task("Smiling", LabelInfo(kind="binary"))
MALE = Task("Male", LabelInfo(kind="binary"))
RACE = Task("race", LabelInfo(kind="multiclass", num_classes=7))
LANDMARKS = Task("landmarks", LabelInfo(kind="regression", dim=10))
CPU = StepContext(torch.device("cpu"))
BATCH = 8


def _defence(utility=SMILING, private=MALE, cifar_stem=False, seed=0, **params):
    torch.manual_seed(seed)
    spec = DefenceSpec(utility=utility, private=private, split=3, sigma=0.0, noise=False,
                       params=DiscoParams(**params), image_size=32, cifar_stem=cifar_stem)
    return Disco(spec)


def _target(task, generator):
    if task.kind == "regression":
        return torch.rand(BATCH, task.num_outputs, generator=generator)
    classes = 2 if task.kind == "binary" else task.num_outputs
    return torch.randint(0, classes, (BATCH,), generator=generator)


def _batch(utility=SMILING, private=MALE):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(BATCH, 3, 32, 32, generator=generator)
    return images, _target(utility, generator), _target(private, generator)


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def _same(before, module):
    return all(torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


@pytest.mark.parametrize(
    ("prune_ratio", "channels", "expected"),
    [(0.0, 128, 0), (0.5, 128, 64), (0.9, 128, 115), (0.99, 128, 126), (0.9, 10, 9),
     (0.99, 10, 9), (0.29, 100, 29)],
)
def test_mask_suppresses_floor_r_times_c_channels_of_every_sample(prune_ratio, channels,
                                                                  expected):
    scores = torch.randn(BATCH, channels, generator=torch.Generator().manual_seed(2))
    mask = soft_channel_mask(scores, prune_ratio, temperature=30.0)
    assert pruned_channel_count(channels, prune_ratio) == expected
    assert ((mask >= 0) & (mask <= 1)).all()
    assert (mask < 0.5).sum(dim=1).tolist() == [expected] * BATCH
    # The suppressed channels are the lowest-scored ones of each sample.
    lowest = scores.argsort(dim=1)[:, :expected]
    assert (mask.gather(1, lowest) < 0.5).all()


@pytest.mark.parametrize("cifar_stem", [False, True])
def test_client_sends_the_encoder_features_with_r_of_their_channels_masked(cifar_stem):
    defence = _defence(cifar_stem=cifar_stem, prune_ratio=0.9).eval()
    images, _, _ = _batch()
    with torch.no_grad():
        z = defence.client.encoder(images)
        mask = defence.client.pruner.mask(z)
        sent = defence.client(images)
    assert z.shape[1] == 128
    assert sent.shape == z.shape
    assert torch.allclose(sent, z * mask[:, :, None, None])
    assert (mask < 0.5).sum(dim=1).tolist() == [int(0.9 * 128)] * BATCH
    attacker = defence.make_attacker(7)
    assert attacker(sent).shape == (BATCH, 7)


def test_mask_is_differentiable_in_the_pruner_parameters():
    torch.manual_seed(0)
    pruner = ChannelPruner(resnet18_suffix(2, 128), prune_ratio=0.9, temperature=30.0)
    z = torch.randn(BATCH, 128, 4, 4, requires_grad=True)
    weights = torch.randn(BATCH, 128, 4, 4)
    (pruner(z) * weights).sum().backward()
    for name, parameter in pruner.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name
        assert parameter.grad.abs().sum() > 0, name
    assert z.grad is not None and z.grad.abs().sum() > 0


def _sgd(defence):
    """The defence's optimiser groups, as plain SGD: updates proportional to the gradients (and
    no Adam state for tens of millions of parameters)."""
    return {name: torch.optim.SGD(optimizer.param_groups[0]["params"], lr=0.1)
            for name, optimizer in defence.configure_optimizers().items()}


def _step(defence, utility=SMILING, private=MALE):
    images, utility_target, private_target = _batch(utility, private)
    return defence.train_step(images, utility_target, private_target, _sgd(defence), CPU)


def _relative_error(actual, expected):
    return float((actual - expected).norm() / expected.norm().clamp_min(1e-12))


@pytest.mark.parametrize("proxy", ["attribute", "reconstruction"])
def test_each_part_gets_the_gradient_of_its_own_objective(proxy):
    # Reference: plain autograd through the deployed client on a copy taken before the step.
    # Encoder and utility head: grad L_util (including the path through the pruner's scores);
    # pruner: grad of (1 - alpha) * L_util - alpha * L_proxy.
    alpha = 0.3
    defence = _defence(proxy=proxy, alpha=alpha)
    reference = copy.deepcopy(defence)
    images, utility_target, private_target = _batch()
    _step(defence)

    sent = reference.client(images)
    utility_loss = SMILING.loss(reference.utility_head(sent), utility_target)
    proxy_loss = reference.proxy_loss(reference.adversary(sent), images, private_target)
    objectives = {
        "client.encoder": utility_loss,
        "utility_head": utility_loss,
        "client.pruner": (1 - alpha) * utility_loss - alpha * proxy_loss,
    }
    for name, objective in objectives.items():
        expected = torch.autograd.grad(objective, list(reference.get_submodule(name).parameters()),
                                       retain_graph=True)
        actual = [p.grad for p in defence.get_submodule(name).parameters()]
        errors = [_relative_error(a, e) for a, e in zip(actual, expected, strict=True)]
        assert max(errors) < 1e-4, name
    # The pruner's batch norms saw the batch once, as in the deployed client's forward pass.
    for actual, expected in zip(defence.client.buffers(), reference.client.buffers(),
                                strict=True):
        assert torch.allclose(actual.float(), expected.float())


def _reinitialise(module, seed):
    torch.manual_seed(seed)
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


def test_encoder_and_utility_head_ignore_the_proxy_adversary_and_alpha():
    # Two defences that differ only in their proxy adversaries and in alpha: if the proxy loss
    # or alpha reached the encoder or the utility head, their updates would differ.
    first = _defence(alpha=0.2)
    second = _defence(alpha=0.9)
    _reinitialise(second.adversary, seed=7)
    encoder_before = _snapshot(first.client.encoder)
    _step(first)
    _step(second)
    assert not _same(encoder_before, first.client.encoder)
    assert _same(_snapshot(first.client.encoder), second.client.encoder)
    assert _same(_snapshot(first.utility_head), second.utility_head)
    assert not _same(_snapshot(first.client.pruner), second.client.pruner)


@pytest.mark.parametrize(
    ("utility", "private", "proxy"),
    [(RACE, LANDMARKS, "attribute"), (LANDMARKS, RACE, "attribute")],
)
def test_train_step_moves_every_part_and_reports_loop_scalars(utility, private, proxy):
    defence = _defence(utility=utility, private=private, proxy=proxy)
    images, utility_target, private_target = _batch(utility, private)
    parts = {"encoder": defence.client.encoder, "pruner": defence.client.pruner,
             "utility_head": defence.utility_head, "adversary": defence.adversary}
    before = {name: _snapshot(part) for name, part in parts.items()}
    values = defence.train_step(images, utility_target, private_target, _sgd(defence), CPU)
    expected = {"utility_loss", "adversary_loss", "utility_correct"}
    if proxy == "attribute":
        expected.add("adversary_correct")
    assert set(values) == expected
    assert all(not v.requires_grad and torch.isfinite(v) for v in values.values())
    for name, part in parts.items():
        assert not _same(before[name], part), name
    with torch.no_grad():
        assert defence.eval().predict_utility(images).shape == (BATCH, utility.num_outputs)


def test_describe_reports_the_fixed_split_and_no_noise():
    facts = _defence(prune_ratio=0.99).describe()
    assert (facts["method"], facts["display_name"]) == ("disco", "DISCO")
    assert (facts["split"], facts["sigma"], facts["noise"]) == (2, 0.0, False)
    assert Disco.fixed_split == 2 and not Disco.has_split
    assert facts["params"] == {"prune_ratio": 0.99, "alpha": 0.5, "temperature": 30.0,
                               "lr": 1e-3, "proxy": "attribute"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("prune_ratio", 1.0), ("prune_ratio", -0.1), ("alpha", 1.5), ("alpha", -0.5),
     ("temperature", 0.0), ("lr", 0.0), ("proxy", "entropy")],
)
def test_bad_params_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DiscoParams(**{field: value})
