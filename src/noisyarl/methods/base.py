"""The interface every defence implements, so that one training loop and one attack harness
serve them all.

A defence owns its client model (what runs on the device and produces the transmitted ``z``),
its utility head (the server), any adversaries it trains against, their optimisers and its
update rule. The shared loop in :mod:`noisyarl.training.loop` owns data, devices, precision,
logging, checkpoints and model selection.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from noisyarl.data.tasks import Task
from noisyarl.runtime import StepContext


@dataclass(frozen=True)
class DefenceSpec:
    """What a defence is built from.

    split: K of RN18_K. sigma: noise standard deviation. noise: the ablation switch.
    params: the method's own validated parameters (an instance of the method's ``Params``).
    image_size: side of the square input in px. cifar_stem: use the 32x32 ResNet stem.
    """

    utility: Task
    private: Task
    split: int
    sigma: float
    noise: bool
    params: Any
    image_size: int
    cifar_stem: bool = False


class Defence(nn.Module, ABC):
    """Base class of defences. Subclasses set ``name``, ``Params`` and the abstract methods.

    Attributes that subclasses must create: ``client`` (images [B, 3, S, S] in [0, 1] -> z) and
    ``utility_head`` (z -> utility outputs [B, n_utility], raw logits or regression values).
    """

    name: ClassVar[str]
    Params: ClassVar[type]
    #: False when the client sends the raw image (nothing to reconstruct).
    obfuscates: ClassVar[bool] = True
    #: Whether ``spec.split`` (K of RN18_K) and ``spec.sigma`` (the noise module) mean anything
    #: to this defence; the experiment rejects a σ > 0 for a defence without noise.
    has_split: ClassVar[bool] = True
    has_noise: ClassVar[bool] = True

    client: nn.Module
    utility_head: nn.Module

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__()
        self.spec = spec

    @abstractmethod
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers; their states are checkpointed by the loop."""

    def configure_schedulers(
        self, optimizers: dict[str, torch.optim.Optimizer], epochs: int
    ) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Learning-rate schedules stepped once per epoch by the loop (default: none).

        ``epochs`` is the run's total number of epochs; states are checkpointed by the loop.
        """
        return {}

    @abstractmethod
    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        """One update on a batch; returns detached per-batch scalars (losses, score sums).

        Keys ending in ``_loss`` are averaged over steps by the loop; keys ending in ``_correct``
        are summed and divided by the number of samples (scores of :meth:`Task.score_sum`).
        """

    @abstractmethod
    def make_attacker(self, num_outputs: int) -> nn.Module:
        """A fresh, untrained attacker for the leakage attack: z -> [B, num_outputs]."""

    def predict_utility(self, images: torch.Tensor) -> torch.Tensor:
        """Server-side utility outputs for images [B, 3, S, S]."""
        return self.utility_head(self.client(images))

    def describe(self) -> dict[str, Any]:
        """Facts recorded in ``metrics.json``."""
        return {
            "method": self.name,
            "split": self.spec.split,
            "sigma": self.spec.sigma,
            "noise": self.spec.noise,
        }
