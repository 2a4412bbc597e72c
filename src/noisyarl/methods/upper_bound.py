"""The "RN18" practical upper bound: no defence, a full ResNet18 on raw images per task.

The client sends the image itself (identity), the utility head is a whole ResNet18, and the
leakage attack trains another whole ResNet18 on raw images for the private label, which gives the
upper bound's private-task accuracy (docs/method.md §1). Nothing is obfuscated, so there is no
split, no noise module and no Δ (:meth:`Defence.describe`: ``split`` None, ``sigma`` 0).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from noisyarl.methods.base import DefenceSpec
from noisyarl.methods.image_space import ImageSpaceDefence


@dataclass
class UpperBoundParams:
    """lr: Adam learning rate of the ResNet18 (same as the paper's 1e-3)."""

    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class UpperBound(ImageSpaceDefence):
    """The "RN18" reference: the identity client and a whole ResNet18 as the utility head (the
    image-space family's shared part with the identity as its transform)."""

    name = "upper_bound"
    display_name = "RN18 (upper bound)"
    Params = UpperBoundParams
    obfuscates = False

    def make_transform(self, spec: DefenceSpec) -> nn.Module:
        return nn.Identity()
