"""Shredder: learned additive noise on the features (Mireshghallah et al., ASPLOS 2020,
"Shredder: Learning Noise Distributions to Protect Inference Privacy").

The paper keeps a pre-trained network fixed and learns the distribution of an additive noise
tensor on the features it sends: a loss that trades the task's loss against the magnitude of the
noise (the knob λ), then noise sampled afresh at inference. There is no adversary; privacy comes
from as much noise as the utility task tolerates, shaped so that it spares what the task needs.

This practical version (project's choices, docs in README "Defences"):

- Client: ``RN18_K``, ``h`` rescaled per sample to unit RMS (``normalize``), then
  ``z = h + s ⊙ ε``, ``ε ~ N(0, I)`` drawn afresh on every call (training, evaluation, attacks
  and deployment), with one learned standard deviation ``s_c = exp(ρ_c)`` per channel
  (:class:`LearnedChannelNoise`, reparameterised so the draw is differentiable in ``ρ``).
- Update, one optimiser: client, utility head and ``ρ`` descend
  ``L_util − λ · mean_c ρ_c`` (the mean log noise scale, i.e. the log of the noise's geometric
  mean scale). The networks get ``L_util``'s gradient only; ``ρ`` grows wherever the utility
  does not pay for it: raising every scale e-fold is worth λ nats of utility loss.
- The network is trained with the noise from scratch instead of pre-trained and frozen (no
  pre-trained weights here); ``normalize`` keeps it from outgrowing the noise by scaling ``h``
  up, so ``s`` stays in units of the features' own RMS (as noisy ARL's ``normalize``).
- Gaussian instead of the paper's Laplace draws, and a per-channel scale instead of a
  per-element noise tensor fitted after training: the draw is one ``RandomNormalLike`` in the
  exported ONNX graph, and the scales are what is learned.

Its noise is no :class:`~noisyarl.models.GaussianNoise` of scalar σ: ``has_noise`` is false
(``method.sigma`` and ``method.noise`` do not apply) and :meth:`Defence.noise_module` is None, so
the attacks find the client random and call it on every pass (multi-query averaging calls it k
times, :class:`noisyarl.attacks.view.AveragedClient`); keyed noise does not apply. The noise is
a :class:`~noisyarl.models.noise.NoiseSource`, which ``noisyarl export`` keeps inside the graph
and checks (residual standard deviation = RMS of the scales), and which
:func:`~noisyarl.models.noise.measure_signal` switches off to measure ``h``: the run's
``sigma_eff`` is RMS(s) / SD(h).

Defaults (project's choices): λ 0.1 (grid 0.01, 0.1, 0.3, 1), initial scale 1 (noise as large as
the normalised features), Adam 1e-3 for the networks and 1e-2 for ``ρ`` (so the scales move
within a few epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from noisyarl.methods.base import Defence, DefenceSpec, Knob
from noisyarl.models import resnet18_prefix, resnet18_suffix
from noisyarl.models.noise import NoiseSource, Obfuscator
from noisyarl.runtime import StepContext

#: Channels of ``RN18_K``'s output for K = 0 (the image itself) .. 4.
PREFIX_CHANNELS = (3, 64, 128, 256, 512)


@dataclass
class ShredderParams:
    """lambda_noise: λ, weight of the mean log noise scale in the loss, >= 0 (0.1).
    init_scale: initial noise standard deviation of every channel, > 0, in units of the
    normalised features' RMS (1.0). normalize: rescale ``h`` per sample to unit RMS before the
    noise (true). lr: Adam learning rate of client and utility head (1e-3). noise_lr: Adam
    learning rate of the log scales (1e-2).
    """

    lambda_noise: float = 0.1
    init_scale: float = 1.0
    normalize: bool = True
    lr: float = 1e-3
    noise_lr: float = 1e-2

    def __post_init__(self) -> None:
        if self.lambda_noise < 0:
            raise ValueError(f"lambda_noise must be >= 0, got {self.lambda_noise}")
        for name in ("init_scale", "lr", "noise_lr"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")


class LearnedChannelNoise(NoiseSource):
    """``h`` [B, C, ...] -> ``h' + s ⊙ ε`` [B, C, ...] (float32), a fresh ``ε ~ N(0, I)`` per call.

    ``s = exp(log_scale)`` [C] is learned, one standard deviation per channel; ``h'`` is ``h``, or
    with ``normalize`` ``h`` rescaled per sample to unit RMS. The draw does not depend on
    ``train()``/``eval()``; ``enabled = False`` (export verification) leaves ``h'``.
    """

    def __init__(self, channels: int, init_scale: float, normalize: bool = True) -> None:
        super().__init__()
        if init_scale <= 0:
            raise ValueError(f"init_scale must be > 0, got {init_scale}")
        self.log_scale = nn.Parameter(torch.full((channels,), math.log(init_scale)))
        self.normalize = bool(normalize)
        self.enabled = True

    def scales(self) -> torch.Tensor:
        """The per-channel standard deviations ``s`` [C]."""
        return self.log_scale.exp()

    @property
    def noise_std(self) -> float:
        """RMS of the scales: the noise's standard deviation over all elements of ``z``."""
        if not self.enabled:
            return 0.0
        return float(self.scales().detach().pow(2).mean().sqrt())

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.signal(h)
        if not self.enabled:
            return h
        # As GaussianNoise: drawn in float32 and in logical (NCHW) order whatever h's layout.
        noise = torch.randn_like(h, dtype=torch.float32, memory_format=torch.contiguous_format)
        scale = self.scales().view(1, -1, *([1] * (h.dim() - 2)))
        return h.float() + scale * noise

    def extra_repr(self) -> str:
        return f"channels={self.log_scale.numel()}, normalize={self.normalize}"


class Shredder(Defence):
    """Shredder: RN18_K plus learned per-channel Gaussian noise, trained for utility while the
    noise scales grow (no adversary)."""

    name = "shredder"
    display_name = "Shredder"
    Params = ShredderParams
    #: λ, the weight of the noise magnitude against the utility loss.
    knobs = (Knob("params.lambda_noise", (0.01, 0.1, 0.3, 1.0), "λ"),)
    # Learned noise, not method.sigma: no noise module of the attacks' kind (noise_module None).
    has_noise = False

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        params: ShredderParams = spec.params
        noise = LearnedChannelNoise(PREFIX_CHANNELS[spec.split], params.init_scale,
                                    params.normalize)
        self.client = Obfuscator(resnet18_prefix(spec.split, spec.cifar_stem), noise)
        self.utility_head = resnet18_suffix(spec.split, spec.utility.num_outputs, spec.cifar_stem)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        params: ShredderParams = self.spec.params
        networks = list(self.client.extractor.parameters()) + list(self.utility_head.parameters())
        return {"main": torch.optim.Adam([
            {"params": networks, "lr": params.lr},
            {"params": [self.client.noise.log_scale], "lr": params.noise_lr},
        ])}

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        utility = self.spec.utility
        noise = self.client.noise
        with context.autocast():
            utility_out = self.utility_head(self.client(images))
            utility_loss = utility.loss(utility_out, utility_target)
            mean_log_scale = noise.log_scale.mean()
            loss = utility_loss - self.spec.params.lambda_noise * mean_log_scale
        context.step(loss, optimizers["main"])
        return {
            "utility_loss": utility_loss.detach(),
            "noise_log_scale": mean_log_scale.detach(),
            "utility_correct": utility.score_sum(utility_out, utility_target),
        }

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return resnet18_suffix(self.spec.split, num_outputs, self.spec.cifar_stem)
