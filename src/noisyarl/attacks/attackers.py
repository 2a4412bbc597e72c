"""The attribute-leakage attackers of the worst-case suite, by name.

Every attacker is trained (or fitted) on frozen obfuscated features ``z`` of the training split
and scored on the test split, with the noise on (docs/method.md §3). The paper's protocol uses
one of them, ``proxy``; the worst-case evaluation reports them all and their maximum:

- ``proxy``: a fresh copy of the defence's own proxy adversary (``Defence.make_attacker``), the
  paper's attacker.
- ``resnet18``: a full ResNet18 (all four stages) whose stem is replaced by an adapter to z's
  shape: a larger attacker than the proxy for every defence whose client holds part of a ResNet.
- ``linear``: a linear probe on pooled features (average-pooled to at most 2 x 2 per channel,
  standardised by a non-affine batch norm, then one linear layer).
- ``mlp``: a two-hidden-layer MLP on the same pooled features.
- ``knn``: k-nearest neighbours on the same pooled features (:mod:`noisyarl.attacks.knn`).

A new attacker is one entry of :data:`ATTACKERS`: a function from an
:class:`~noisyarl.attacks.view.AttackTarget` and :class:`~noisyarl.attacks.base.AttackSettings`
to a :class:`~noisyarl.attacks.leakage.LeakageResult` (use :func:`trained` to wrap a module
builder). Every trained attacker stops on a validation plateau (:mod:`noisyarl.attacks.base`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import resnet18

from noisyarl.attacks.base import AttackSettings
from noisyarl.attacks.features import FeaturePool, pooled_dim
from noisyarl.attacks.knn import run_knn_attack
from noisyarl.attacks.leakage import LeakageResult, run_leakage_attack
from noisyarl.attacks.view import AttackTarget

#: Width of the MLP attacker's hidden layers.
MLP_WIDTH = 256
#: Channels of the ResNet18 attacker's adapter (ResNet18's stem width).
ADAPTER_CHANNELS = 64
#: A vector z is lifted to a [64, 4, 4] map before the ResNet18 attacker's stages.
VECTOR_MAP_SIDE = 4


def linear_probe(z_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Pool -> standardise (non-affine BN, fixed at eval) -> Linear: a linear function of z."""
    dim = pooled_dim(z_shape)
    return nn.Sequential(FeaturePool(), nn.BatchNorm1d(dim, affine=False),
                         nn.Linear(dim, num_outputs))


def mlp_attacker(z_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """Pool -> standardise -> [Linear, BN, ReLU] x 2 (width 256) -> Linear."""
    dim = pooled_dim(z_shape)
    return nn.Sequential(
        FeaturePool(), nn.BatchNorm1d(dim, affine=False),
        nn.Linear(dim, MLP_WIDTH), nn.BatchNorm1d(MLP_WIDTH), nn.ReLU(inplace=True),
        nn.Linear(MLP_WIDTH, MLP_WIDTH), nn.BatchNorm1d(MLP_WIDTH), nn.ReLU(inplace=True),
        nn.Linear(MLP_WIDTH, num_outputs),
    )


def resnet18_attacker(z_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
    """A full ResNet18 (layer1..layer4, average pool, fc) behind an adapter to z's shape.

    Feature map [C, h, w]: a 3x3 convolution C -> 64 + BN + ReLU, with stride 2 when the map is
    at least 32 px wide (raw images), as ResNet's stem reduces large inputs. Vector [D]: a linear
    lift to a [64, 4, 4] map + BN + ReLU.
    """
    if len(z_shape) == 1:
        side = VECTOR_MAP_SIDE
        adapter = nn.Sequential(
            nn.Linear(z_shape[0], ADAPTER_CHANNELS * side * side),
            nn.Unflatten(1, (ADAPTER_CHANNELS, side, side)),
            nn.BatchNorm2d(ADAPTER_CHANNELS), nn.ReLU(inplace=True),
        )
    elif len(z_shape) == 3:
        stride = 2 if min(z_shape[1:]) >= 32 else 1
        adapter = nn.Sequential(
            nn.Conv2d(z_shape[0], ADAPTER_CHANNELS, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(ADAPTER_CHANNELS), nn.ReLU(inplace=True),
        )
    else:
        raise ValueError(f"z must be a feature map (C, h, w) or a vector (D,), got {z_shape}")
    network = resnet18(weights=None, num_classes=num_outputs)
    return nn.Sequential(adapter, network.layer1, network.layer2, network.layer3,
                         network.layer4, network.avgpool, nn.Flatten(1), network.fc)


def trained(build: Callable[[AttackTarget], nn.Module], name: str
            ) -> Callable[[AttackTarget, AttackSettings], LeakageResult]:
    """An attacker entry that trains the module ``build(target)`` with
    :func:`~noisyarl.attacks.leakage.run_leakage_attack` (early stopping on validation)."""

    def run(target: AttackTarget, settings: AttackSettings) -> LeakageResult:
        torch.manual_seed(settings.seed)  # the attacker's initial weights
        return run_leakage_attack(target.view, build(target), target.splits, target.task,
                                  settings, name=name)

    return run


def _proxy(target: AttackTarget) -> nn.Module:
    if target.proxy is None:
        raise ValueError("the proxy attacker needs the defence's proxy adversary")
    return target.proxy(target.task.num_outputs)


#: name -> attacker. Order is the report's order.
ATTACKERS: dict[str, Callable[[AttackTarget, AttackSettings], LeakageResult]] = {
    "proxy": trained(_proxy, "proxy"),
    "resnet18": trained(lambda t: resnet18_attacker(t.z_shape(), t.task.num_outputs),
                        "resnet18"),
    "linear": trained(lambda t: linear_probe(t.z_shape(), t.task.num_outputs), "linear"),
    "mlp": trained(lambda t: mlp_attacker(t.z_shape(), t.task.num_outputs), "mlp"),
    "knn": run_knn_attack,
}


def run_attacker(name: str, target: AttackTarget, settings: AttackSettings) -> LeakageResult:
    """Run the attacker registered as ``name`` (``ValueError`` naming the known ones if none)."""
    if name not in ATTACKERS:
        raise ValueError(f"unknown attacker {name!r} (known: {', '.join(ATTACKERS)})")
    return ATTACKERS[name](target, settings)


__all__ = [
    "ATTACKERS",
    "linear_probe",
    "mlp_attacker",
    "resnet18_attacker",
    "run_attacker",
    "trained",
]
