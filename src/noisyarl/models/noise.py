"""The noise module of noisy ARL: ``z = h + sigma * eps``, ``eps ~ N(0, I)`` (docs/method.md §2)."""

from __future__ import annotations

import torch
from torch import nn


class GaussianNoise(nn.Module):
    """Adds isotropic Gaussian noise of standard deviation ``sigma`` to its input.

    As in the authors' code the noise does not depend on ``train()``/``eval()``: it is drawn afresh
    on every forward pass in training, evaluation, attacks and deployment. ``enabled=False`` is an
    explicit switch for ablations, recorded in results.

    >>> noise = GaussianNoise(sigma=2.0).eval()
    >>> h = torch.zeros(4, 8, 3, 3)
    >>> bool((noise(h) != 0).any())
    True
    >>> GaussianNoise(sigma=2.0, enabled=False)(h).abs().sum()
    tensor(0.)
    """

    def __init__(self, sigma: float, enabled: bool = True) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.enabled = bool(enabled)

    @property
    def active(self) -> bool:
        return self.enabled and self.sigma > 0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        if not self.active:
            return h
        # Drawn and added in float32 even under bf16/fp16 autocast: a bfloat16 draw and sum
        # keep 8 bits of mantissa, which at large σ wipes out the features' small variations.
        return h.float() + self.sigma * torch.randn_like(h, dtype=torch.float32)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, enabled={self.enabled}"


class Obfuscator(nn.Module):
    """Client model: a feature extractor followed by the noise module.

    ``forward(x)`` maps images [B, 3, H, W] in [0, 1] to the transmitted ``z`` [B, C, H', W'];
    ``features(x)`` gives the noise-free ``h``.
    """

    def __init__(self, extractor: nn.Module, noise: GaussianNoise) -> None:
        super().__init__()
        self.extractor = extractor
        self.noise = noise

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.extractor(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.noise(self.extractor(x))
