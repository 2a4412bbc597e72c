"""Noisy ARL, the paper's method (docs/method.md §2).

Client (the paper's obfuscator ``E``): ``RN18_K`` followed by the noise module
``z = h + sigma * eps``, an :class:`~noisyarl.models.Obfuscator`. Server: the utility head ``T``
(the rest of ResNet18). A proxy adversary ``A`` of the same shape predicts the private label.
Per batch, from one forward pass: client and utility head descend ``L_util - lambda * L_adv``;
the adversary descends its own ``L_adv`` (:func:`~noisyarl.methods.adversary.adversarial_update`).
Adam(1e-3) for all, no schedule. ``sigma = 0`` is plain ARL.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from noisyarl.methods.adversary import adversarial_update
from noisyarl.methods.base import Defence, DefenceSpec, Knob
from noisyarl.models import GaussianNoise, Obfuscator, resnet18_prefix, resnet18_suffix
from noisyarl.runtime import StepContext


@dataclass
class NoisyClientParams:
    """The settings of a noisy ARL client and its utility head, shared with the noise-only
    ablation (:mod:`noisyarl.methods.noise_only`).

    lr, beta1, beta2: Adam settings for client, utility head and (noisy ARL's) adversary
    (paper: 1e-3, 0.9, 0.999).
    normalize: rescale h per sample to unit RMS before the noise, so that σ means the same
    across datasets, splits and training lengths (``method.params.normalize: true``; off by
    default, the paper's method; docs/method.md §2).
    """

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    normalize: bool = False

    def __post_init__(self) -> None:
        if self.lr <= 0:
            raise ValueError("lr must be > 0")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")


@dataclass
class NoisyARLParams(NoisyClientParams):
    """lambda_adv: weight of the adversary's loss in the client's objective (paper: 0.01);
    the rest as :class:`NoisyClientParams`."""

    lambda_adv: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.lambda_adv < 0:
            raise ValueError("lambda_adv must be >= 0")


def noisy_client(spec: DefenceSpec) -> Obfuscator:
    """``RN18_K`` followed by the noise module at ``spec.sigma`` (``spec.params.normalize``)."""
    noise = GaussianNoise(spec.sigma, enabled=spec.noise, normalize=spec.params.normalize)
    return Obfuscator(resnet18_prefix(spec.split, spec.cifar_stem), noise)


class NoisyARL(Defence):
    """Noisy ARL: RN18_K plus the noise module, trained against a proxy adversary.

    Its noise module (:meth:`Defence.noise_module`) is the client's ``GaussianNoise``.
    """

    name = "noisy_arl"
    display_name = "noisy ARL"
    Params = NoisyARLParams
    studied = True
    #: σ, and the adversary weight λ that trades off plain ARL (σ = 0).
    knobs = (Knob("sigma", (1.0, 2.0, 4.0, 9.0)),
             Knob("params.lambda_adv", (0.01, 0.1, 0.5, 1.0), "λ"))

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        self.client = noisy_client(spec)
        self.utility_head = resnet18_suffix(spec.split, spec.utility.num_outputs, spec.cifar_stem)
        self.adversary = resnet18_suffix(spec.split, spec.private.num_outputs, spec.cifar_stem)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params: NoisyARLParams = self.spec.params
        betas = (params.beta1, params.beta2)
        main = list(self.client.parameters()) + list(self.utility_head.parameters())
        return {
            "main": torch.optim.Adam(main, lr=params.lr, betas=betas),
            "adversary": torch.optim.Adam(self.adversary.parameters(), lr=params.lr, betas=betas),
        }

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        utility, private = self.spec.utility, self.spec.private
        lambda_adv = self.spec.params.lambda_adv
        with context.autocast():
            z = self.client(images)
            utility_out = self.utility_head(z)
            adversary_out = self.adversary(z)
            utility_loss = utility.loss(utility_out, utility_target)
            adversary_loss = private.loss(adversary_out, private_target)
            # The client maximises the adversary's loss (docs/method.md §2).
            client_loss = utility_loss - lambda_adv * adversary_loss
        adversarial_update(client_loss, {"adversary": adversary_loss}, optimizers, context)
        return {
            "utility_loss": utility_loss.detach(),
            "adversary_loss": adversary_loss.detach(),
            "utility_correct": utility.score_sum(utility_out, utility_target),
            "adversary_correct": private.score_sum(adversary_out, private_target),
        }

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return resnet18_suffix(self.spec.split, num_outputs, self.spec.cifar_stem)
