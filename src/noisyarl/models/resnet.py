"""ResNet18 split into a client prefix (the obfuscator ``RN18_K``) and a server suffix.

``resnet18_prefix(K)`` holds torchvision ResNet18's conv1, bn1, relu, maxpool, layer1..layerK
(docs/method.md §2); ``resnet18_suffix(K, n)`` holds layer(K+1)..layer4, avgpool and a fresh fc
with ``n`` outputs. ``K = 0`` gives an identity prefix and the whole network as suffix (the "RN18"
upper bound trained on raw images). Everything is trained from scratch (no pretrained weights).

Shapes for a 178x178 input (ImageNet stem): K=1 -> [64, 45, 45], K=2 -> [128, 23, 23],
K=3 -> [256, 12, 12], K=4 -> [512, 6, 6]. With ``cifar_stem=True`` (32x32 inputs) conv1 is a 3x3
stride-1 convolution and there is no maxpool: K=3 on 32x32 -> [256, 8, 8].
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

LAYER_NAMES = ("layer1", "layer2", "layer3", "layer4")
STEM_NAMES = ("conv1", "bn1", "relu", "maxpool")


def _backbone(num_outputs: int, cifar_stem: bool) -> nn.Module:
    network = resnet18(weights=None, num_classes=num_outputs)
    if cifar_stem:
        network.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        network.maxpool = nn.Identity()
    return network


def _check_split(split: int) -> None:
    if not 0 <= split <= 4:
        raise ValueError(f"split K must be in 0..4 (0 = no client part), got {split}")


def resnet18_prefix(split: int, cifar_stem: bool = False) -> nn.Sequential:
    """Client part ``RN18_K``: images [B, 3, H, W] -> features [B, C_K, H_K, W_K]."""
    _check_split(split)
    network = _backbone(1, cifar_stem)
    names = STEM_NAMES + LAYER_NAMES[:split] if split > 0 else ()
    return nn.Sequential(*[getattr(network, name) for name in names])


def resnet18_suffix(split: int, num_outputs: int, cifar_stem: bool = False) -> nn.Sequential:
    """Server part: features of ``RN18_K`` -> outputs [B, num_outputs] (raw logits or values)."""
    _check_split(split)
    network = _backbone(num_outputs, cifar_stem)
    names = (STEM_NAMES if split == 0 else ()) + LAYER_NAMES[split:]
    modules = [getattr(network, name) for name in names]
    return nn.Sequential(*modules, network.avgpool, nn.Flatten(1), network.fc)


def feature_shape(
    split: int, image_size: int, cifar_stem: bool = False
) -> tuple[int, int, int]:
    """Shape [C, H, W] of ``RN18_K``'s output for a square ``image_size`` input."""
    with torch.no_grad():
        prefix = resnet18_prefix(split, cifar_stem).eval()
        out = prefix(torch.zeros(1, 3, image_size, image_size))
    return tuple(out.shape[1:])  # type: ignore[return-value]
