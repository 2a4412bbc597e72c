"""DeepObfuscator (Li et al., IoTDI 2021) as a defence (docs/method.md §5).

Client ``E`` (the paper's obfuscator; its authors also say encoder, docs/method.md §9) =
VGG16-BN blocks 1-2, no split and no noise module; it sends ``z = E(x)`` [B, 128, S/4, S/4].
Server: the utility classifier ``T`` = VGG16-BN blocks 3-5 + FC. Two proxy adversaries train
against the client: an attribute adversary ``A`` (same architecture as ``T``) predicting the
private label, and a reconstruction adversary ``R`` (the attack's
:class:`~noisyarl.models.ReconstructionDecoder`) inverting ``z`` to the image.

Per batch, one step of each network from one forward pass (the scheme of noisy ARL's code):

1. ``E`` and ``T`` descend ``L_util - lambda1 * L_adv - lambda2 * L_rec``, i.e. they keep the
   utility task while maximising the attribute adversary's loss and the reconstruction error.
2. ``A`` descends its own ``L_adv`` and ``R`` its own ``L_rec``; neither moves ``E``
   (:func:`~noisyarl.methods.adversary.adversarial_update`).

``L_util`` and ``L_adv`` are :meth:`Task.loss` on raw outputs (BCE-with-logits, cross-entropy or
MSE by task kind). ``L_rec`` is the mean squared error between ``R(z)`` and the image in [0, 1]:
the paper reports MS-SSIM, but training needs a differentiable reconstruction error, and the
reconstruction attack of this project is trained with the same MSE.

Sources of the defaults (:class:`DeepObfuscatorParams`): the architectures are the paper's
(docs/method.md §5). The paper's values of lambda1, lambda2 and its optimiser settings are not
in docs/method.md, so they are the project's choices, documented on each field.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from noisyarl.methods.adversary import adversarial_update
from noisyarl.methods.base import Defence, DefenceSpec, Knob
from noisyarl.models import ReconstructionDecoder, vgg16_obfuscator, vgg16_tail
from noisyarl.models.vgg import OBFUSCATOR_CHANNELS
from noisyarl.runtime import StepContext


@dataclass
class DeepObfuscatorParams:
    """Weights of the two adversarial terms and the optimiser settings.

    lambda1: weight of the attribute adversary's loss in the client's objective. Project's
        choice 0.01, the weight the noisy ARL authors give their attribute adversary, so that the
        two methods weigh the attribute term alike.
    lambda2: weight of the reconstruction adversary's MSE (per pixel, images in [0, 1]) in the
        client's objective. Project's choice 1.0: an MSE lies in [0, 1], so a unit weight puts
        it on the scale of the utility loss; sweep it for a utility/privacy trade-off.
    lr, beta1, beta2: Adam settings of all four networks. Project's choice: lr 1e-4 with noisy
        ARL's betas (0.9, 0.999). At noisy ARL's lr 1e-3 the VGG16-BN client and tail trained
        from scratch did not learn the utility task in short runs at 48 px, with or without the
        adversarial terms (Smiling on generated faces, 150 steps at batch 32: validation
        52.2 % at 1e-3 with lambda1 = lambda2 = 0, 88.8 % at 1e-4 with the default lambdas;
        benchmarks/RESULTS.md, "DeepObfuscator on the trade-off curve").
    """

    lambda1: float = 0.01
    lambda2: float = 1.0
    lr: float = 1e-4
    beta1: float = 0.9
    beta2: float = 0.999

    def __post_init__(self) -> None:
        for name in ("lambda1", "lambda2"):
            _require(name, getattr(self, name), ">= 0", lambda value: value >= 0)
        _require("lr", self.lr, "> 0", lambda value: value > 0)
        for name in ("beta1", "beta2"):
            _require(name, getattr(self, name), "in [0, 1)", lambda value: 0 <= value < 1)


def _require(name: str, value: float, condition: str, holds: Callable[[float], bool]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is finite and ``holds(value)``."""
    if not (isinstance(value, int | float) and math.isfinite(value) and holds(value)):
        raise ValueError(f"{name} must be a finite number {condition}, got {value!r}")


def reconstruction_error(reconstruction: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared error per pixel between [B, 3, S, S] tensors in [0, 1] (a scalar)."""
    return F.mse_loss(reconstruction.float(), images.float())


class DeepObfuscator(Defence):
    """DeepObfuscator: VGG16-BN split after block 2, attribute and reconstruction adversaries."""

    name = "deep_obfuscator"
    display_name = "DeepObfuscator"
    Params = DeepObfuscatorParams
    knobs = (Knob("params.lambda1", (0.01, 0.1, 0.5, 1.0), "λ1"),)
    has_split = False
    has_noise = False

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        self.client = vgg16_obfuscator()
        self.utility_head = vgg16_tail(spec.utility.num_outputs)
        self.adversary = vgg16_tail(spec.private.num_outputs)
        self.reconstructor = ReconstructionDecoder(OBFUSCATOR_CHANNELS, spec.image_size)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params: DeepObfuscatorParams = self.spec.params
        betas = (params.beta1, params.beta2)

        def adam(parameters) -> torch.optim.Optimizer:
            return torch.optim.Adam(parameters, lr=params.lr, betas=betas)

        main = list(self.client.parameters()) + list(self.utility_head.parameters())
        return {
            "main": adam(main),
            "adversary": adam(self.adversary.parameters()),
            "reconstructor": adam(self.reconstructor.parameters()),
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
        params: DeepObfuscatorParams = self.spec.params
        with context.autocast():
            z = self.client(images)
            utility_out = self.utility_head(z)
            utility_loss = utility.loss(utility_out, utility_target)
            adversary_out = self.adversary(z)
            adversary_loss = private.loss(adversary_out, private_target)
            reconstruction_loss = reconstruction_error(self.reconstructor(z), images)
            # The client maximises both adversaries' errors (docs/method.md §5).
            client_loss = (
                utility_loss
                - params.lambda1 * adversary_loss
                - params.lambda2 * reconstruction_loss
            )
        adversarial_update(client_loss, {"adversary": adversary_loss,
                                         "reconstructor": reconstruction_loss},
                           optimizers, context)
        return {
            "utility_loss": utility_loss.detach(),
            "adversary_loss": adversary_loss.detach(),
            "reconstruction_loss": reconstruction_loss.detach(),
            "utility_correct": utility.score_sum(utility_out, utility_target),
            "adversary_correct": private.score_sum(adversary_out, private_target),
        }

    def make_attacker(self, num_outputs: int) -> nn.Module:
        """A fresh attribute adversary's architecture: VGG16-BN blocks 3-5 + FC."""
        return vgg16_tail(num_outputs)
