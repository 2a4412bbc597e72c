"""Noise only: the ablation that separates noisy ARL's noise from its adversarial training.

Client: the same as noisy ARL's (docs/method.md §2), ``RN18_K`` followed by the noise module
``z = h + sigma * eps`` (an :class:`~noisyarl.models.Obfuscator`), with the noise drawn afresh
in training, evaluation, attacks and deployment alike. Server: the utility head (the rest of
ResNet18). Per batch, client and utility head descend ``L_util`` alone: no proxy adversary, no
adversarial term. Noisy ARL at the same σ minus this defence is what the adversary adds; this
defence minus the upper bound is what the noise alone buys.

Defaults and their source: Adam(1e-3, betas 0.9, 0.999) for client and utility head, no
schedule, and ``normalize`` off: noisy ARL's defaults (the authors' code; see
:class:`~noisyarl.methods.noisy_arl.NoisyARLParams`), so that the two rows differ in the
adversary alone.
"""

from __future__ import annotations

import torch
from torch import nn

from noisyarl.methods.base import Defence, DefenceSpec, Knob, utility_step
from noisyarl.methods.noisy_arl import NoisyClientParams, noisy_client
from noisyarl.models import resnet18_suffix
from noisyarl.runtime import StepContext

#: Noisy ARL's client settings without λ, so that the two rows differ in the adversary alone.
NoiseOnlyParams = NoisyClientParams


class NoiseOnly(Defence):
    """RN18_K plus noisy ARL's noise module, trained for utility only (no adversary).

    Its noise module (:meth:`Defence.noise_module`) is the client's ``GaussianNoise``.
    """

    name = "noise_only"
    display_name = "noise only"
    Params = NoiseOnlyParams
    #: σ, on noisy ARL's grid, so that the two curves meet at the same noise levels.
    knobs = (Knob("sigma", (1.0, 2.0, 4.0, 9.0)),)

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        self.client = noisy_client(spec)
        self.utility_head = resnet18_suffix(spec.split, spec.utility.num_outputs, spec.cifar_stem)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params: NoisyClientParams = self.spec.params
        main = list(self.client.parameters()) + list(self.utility_head.parameters())
        return {"main": torch.optim.Adam(main, lr=params.lr, betas=(params.beta1, params.beta2))}

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        # z carries σ·ε in training too: the client learns utility under its noise.
        return utility_step(self, images, utility_target, optimizers["main"], context)

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return resnet18_suffix(self.spec.split, num_outputs, self.spec.cifar_stem)
