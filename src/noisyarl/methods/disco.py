"""DISCO: Dynamic and Invariant Sensitive Channel Obfuscation (Singh et al., CVPR 2021).

Baseline of docs/method.md §5. Client: ResNet18 through layer2 (the encoder, ``z`` with
C = 128 channels) followed by a channel pruner, itself a ResNet18 tail (layer3, layer4, avgpool,
fc) that gives one score ``s_c`` per channel of each sample. The soft mask is
``m_c = sigmoid((s_c - tau) * temperature)`` with ``tau`` the sample's score at sorted (ascending)
position ``floor(R * C)``, so about a fraction R of the channels is suppressed; the client sends
``z' = z * m``. Because the pruner runs on the device, DISCO's client costs about a full ResNet18.
The split is fixed (``fixed_split``: ``spec.split`` and ``spec.sigma`` are not used, there is
no noise module). The *encoder* here is the first part of the client, not the whole client
(docs/method.md §9).

Server: a utility head (the rest of ResNet18) on ``z'``. Proxy adversary on ``z'``: an attribute
classifier (the rest of ResNet18) or a reconstruction decoder trained with an L2 loss.

Per batch (DISCO's update): the encoder and the utility head descend ``L_util`` only (the
encoder's gradient includes the path through the pruner's scores, as in the authors' code); the
pruner descends ``(1 - alpha) * L_util - alpha * L_proxy``; the proxy adversary descends its own
loss on the detached ``z'`` (:func:`~noisyarl.methods.adversary.adversarial_update`).

Defaults and their sources (docs/method.md §5): ``prune_ratio`` R = 0.9 (the paper; the
authors' later code uses 0.99), ``alpha`` = 0.5, ``temperature`` = 30 (the authors' code divides
by a temperature of 1/30). ``lr`` = 1e-3 with Adam for every part is the project's decision
(docs/method.md gives no DISCO value; it is noisy ARL's setting).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call
from torch.nn import functional as F

from noisyarl.methods.adversary import adversarial_update
from noisyarl.methods.base import Defence, DefenceSpec, Knob
from noisyarl.models import ReconstructionDecoder, resnet18_prefix, resnet18_suffix
from noisyarl.runtime import StepContext

#: DISCO splits ResNet18 after layer2 (docs/method.md §5), whatever ``spec.split`` says.
SPLIT = 2
#: Channels of ResNet18's layer2 output, the ``C`` of ``z``.
Z_CHANNELS = 128
PROXIES = ("attribute", "reconstruction")


@dataclass
class DiscoParams:
    """prune_ratio: R, the fraction of channels the mask suppresses, in [0, 1) (paper: 0.9).
    alpha: weight of the proxy adversary's loss in the pruner's objective, in [0, 1] (0.5).
    temperature: slope of the mask's sigmoid, > 0 (30).
    lr: Adam learning rate of encoder, pruner, utility head and proxy adversary (1e-3).
    proxy: ``attribute`` (a classifier of the private label) or ``reconstruction`` (a decoder
    trained with an L2 loss to the input image).
    """

    prune_ratio: float = 0.9
    alpha: float = 0.5
    temperature: float = 30.0
    lr: float = 1e-3
    proxy: str = "attribute"

    def __post_init__(self) -> None:
        if not 0 <= self.prune_ratio < 1:
            raise ValueError(f"prune_ratio must be in [0, 1), got {self.prune_ratio}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.lr <= 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.proxy not in PROXIES:
            raise ValueError(f"proxy must be one of {', '.join(PROXIES)}, got {self.proxy!r}")


def pruned_channel_count(channels: int, prune_ratio: float) -> int:
    """``floor(R * C)``: how many channels of each sample the mask pushes below 0.5."""
    # The tolerance keeps products such as 0.29 * 100 = 28.999999999999996 at 29.
    return math.floor(prune_ratio * channels + 1e-9)


def soft_channel_mask(scores: torch.Tensor, prune_ratio: float, temperature: float) -> torch.Tensor:
    """Scores [B, C] -> mask [B, C] in (0, 1).

    ``m_c = sigmoid((s_c - tau) * temperature)``, ``tau`` the sample's score at sorted position
    ``floor(R * C)``: the ``floor(R * C)`` lower-scored channels get m < 0.5, the channel at the
    threshold 0.5, the rest m > 0.5. Differentiable in the scores (also through ``tau``).
    """
    position = pruned_channel_count(scores.shape[1], prune_ratio)
    threshold = scores.sort(dim=1).values[:, position : position + 1]
    return torch.sigmoid((scores - threshold) * temperature)


def apply_channel_mask(z: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Features [B, C, H, W] times a per-sample channel mask [B, C]."""
    return z * mask[:, :, None, None]


def scale_gradient(tensor: torch.Tensor, factor: float) -> torch.Tensor:
    """``tensor`` with exactly the same values, whose gradient is multiplied by ``factor``."""
    return tensor.detach() + factor * (tensor - tensor.detach())


@contextlib.contextmanager
def frozen_running_statistics(module: nn.Module) -> Iterator[None]:
    """Inside the block, ``module``'s batch norms normalise with the batch's statistics as usual
    in training mode but leave their running statistics and batch counters unchanged."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    tracked = [norm.track_running_stats for norm in norms]
    for norm in norms:
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm, flag in zip(norms, tracked, strict=True):
            norm.track_running_stats = flag


class ChannelPruner(nn.Module):
    """DISCO's pruner: features ``z`` [B, C, H, W] -> ``z * m`` [B, C, H, W].

    ``scorer`` maps ``z`` to C channel scores [B, C]; :func:`soft_channel_mask` turns them into
    the mask ``m`` [B, C], one per sample (dynamic pruning).
    """

    def __init__(self, scorer: nn.Module, prune_ratio: float, temperature: float) -> None:
        super().__init__()
        self.scorer = scorer
        self.prune_ratio = float(prune_ratio)
        self.temperature = float(temperature)

    def mask(self, z: torch.Tensor, parameter_gradient_scale: float = 1.0) -> torch.Tensor:
        """Mask [B, C] in (0, 1), computed in float32 (the slope-30 sigmoid needs the precision).

        ``parameter_gradient_scale`` multiplies the gradient that reaches the scorer's
        parameters, not the one that reaches ``z``; the values do not change.
        """
        if parameter_gradient_scale == 1.0:
            scores = self.scorer(z)
        else:
            scaled = {name: scale_gradient(parameter, parameter_gradient_scale)
                      for name, parameter in self.scorer.named_parameters()}
            scores = functional_call(self.scorer, scaled, (z,))
        return soft_channel_mask(scores.float(), self.prune_ratio, self.temperature)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return apply_channel_mask(z, self.mask(z))

    def extra_repr(self) -> str:
        return f"prune_ratio={self.prune_ratio:g}, temperature={self.temperature:g}"


class DiscoClient(nn.Module):
    """What runs on the device: images [B, 3, S, S] in [0, 1] -> ``z'`` [B, 128, h, w].

    ``encoder`` (ResNet18 through layer2) gives ``z``; ``pruner`` masks its channels.
    """

    def __init__(self, encoder: nn.Module, pruner: ChannelPruner) -> None:
        super().__init__()
        self.encoder = encoder
        self.pruner = pruner

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pruner(self.encoder(images))


class Disco(Defence):
    """DISCO: ResNet18 through layer2 and a channel pruner on the device, a proxy adversary."""

    name = "disco"
    display_name = "DISCO"
    Params = DiscoParams
    #: The pruning ratio R, up to the paper's 0.9 and beyond it.
    knobs = (Knob("params.prune_ratio", (0.3, 0.6, 0.9, 0.95), "R"),)
    # The split is fixed at ResNet18's layer2 and there is no noise module.
    has_split = False
    has_noise = False
    fixed_split = SPLIT

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        params: DiscoParams = spec.params
        scorer = resnet18_suffix(SPLIT, Z_CHANNELS, spec.cifar_stem)
        self.client = DiscoClient(
            resnet18_prefix(SPLIT, spec.cifar_stem),
            ChannelPruner(scorer, params.prune_ratio, params.temperature),
        )
        self.utility_head = resnet18_suffix(SPLIT, spec.utility.num_outputs, spec.cifar_stem)
        if params.proxy == "attribute":
            self.adversary = resnet18_suffix(SPLIT, spec.private.num_outputs, spec.cifar_stem)
        else:
            self.adversary = ReconstructionDecoder(Z_CHANNELS, spec.image_size)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        lr = self.spec.params.lr
        main = list(self.client.parameters()) + list(self.utility_head.parameters())
        return {
            "main": torch.optim.Adam(main, lr=lr),
            "adversary": torch.optim.Adam(self.adversary.parameters(), lr=lr),
        }

    def proxy_loss(
        self, adversary_out: torch.Tensor, images: torch.Tensor, private_target: torch.Tensor
    ) -> torch.Tensor:
        """The proxy adversary's loss: the private task's loss on raw outputs [B, n_private], or
        the mean squared error of a reconstruction [B, 3, S, S] to the images (values in [0, 1])."""
        if self.spec.params.proxy == "reconstruction":
            return F.mse_loss(adversary_out.float(), images.float())
        return self.spec.private.loss(adversary_out, private_target)

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        utility, alpha = self.spec.utility, self.spec.params.alpha
        encoder, pruner = self.client.encoder, self.client.pruner
        with context.autocast():
            # Two passes through the pruner, so that one backward pass gives every part its own
            # objective. Utility branch: the deployed client's z' = z * m(z); the encoder gets all
            # of L_util's gradient (also through the scores, as in the authors' code), the
            # pruner's parameters (1 - alpha) of it. Proxy branch: the pruner scores and masks
            # the detached z, so L_proxy reaches the pruner and never the encoder.
            z = encoder(images)
            utility_out = self.utility_head(
                apply_channel_mask(z, pruner.mask(z, parameter_gradient_scale=1.0 - alpha)))
            with frozen_running_statistics(pruner):  # the batch already updated them once
                pruned = apply_channel_mask(z.detach(), pruner.mask(z.detach()))
            utility_loss = utility.loss(utility_out, utility_target)
            adversary_out = self.adversary(pruned)
            proxy_loss = self.proxy_loss(adversary_out, images, private_target)
            main_loss = utility_loss - alpha * proxy_loss
        adversarial_update(main_loss, {"adversary": proxy_loss}, optimizers, context)
        values = {
            "utility_loss": utility_loss.detach(),
            "adversary_loss": proxy_loss.detach(),
            "utility_correct": utility.score_sum(utility_out, utility_target),
        }
        if self.spec.params.proxy == "attribute":
            values["adversary_correct"] = self.spec.private.score_sum(adversary_out,
                                                                      private_target)
        return values

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return resnet18_suffix(SPLIT, num_outputs, self.spec.cifar_stem)
