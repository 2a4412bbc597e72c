"""The "RN18" practical upper bound: no defence, a full ResNet18 on raw images per task.

The client sends the image itself (identity), the utility head is a whole ResNet18, and the
leakage attack trains another whole ResNet18 on raw images for the private label, which gives the
upper bound's private-task accuracy (docs/method.md §1). Nothing is obfuscated, so there is no
split, no noise module and no Δ (:meth:`Defence.describe`: ``split`` None, ``sigma`` 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from noisyarl.methods.base import Defence, DefenceSpec, utility_step
from noisyarl.models import resnet18_suffix
from noisyarl.runtime import StepContext


@dataclass
class UpperBoundParams:
    """lr: Adam learning rate of the ResNet18 (same as the paper's 1e-3)."""

    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")


class UpperBound(Defence):
    """The "RN18" reference: the identity client and a whole ResNet18 as the utility head."""

    name = "upper_bound"
    display_name = "RN18 (upper bound)"
    Params = UpperBoundParams
    obfuscates = False
    has_split = False
    has_noise = False

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        self.client = nn.Identity()
        self.utility_head = resnet18_suffix(0, spec.utility.num_outputs, spec.cifar_stem)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.utility_head.parameters(), lr=self.spec.params.lr)}

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        return utility_step(self, images, utility_target, optimizers["main"], context)

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return resnet18_suffix(0, num_outputs, self.spec.cifar_stem)
