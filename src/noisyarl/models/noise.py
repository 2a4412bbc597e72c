"""The noise module of noisy ARL: ``z = h + sigma * eps``, ``eps ~ N(0, I)`` (docs/method.md §2)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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


def find_noise_module(client: nn.Module) -> GaussianNoise | None:
    """The one :class:`GaussianNoise` inside ``client`` (None when it holds none).

    Raises ``ValueError`` when it holds several: which one is "the" noise module is then the
    defence's to say (:meth:`noisyarl.methods.Defence.noise_module`).
    """
    found = [module for module in client.modules() if isinstance(module, GaussianNoise)]
    if len(found) > 1:
        raise ValueError(f"the client holds {len(found)} GaussianNoise modules; its defence must "
                         "say which one is its noise module (override Defence.noise_module)")
    return found[0] if found else None


@contextlib.contextmanager
def noise_switched_off(noise: GaussianNoise) -> Iterator[None]:
    """Inside the block ``noise`` adds nothing; its switch is restored afterwards."""
    enabled = noise.enabled
    noise.enabled = False
    try:
        yield
    finally:
        noise.enabled = enabled


class NoiseFree(nn.Module):
    """``client`` with its noise module ``noise`` switched off: images -> the features ``h``.

    For a client whose noise module adds ``σ·ε`` to its output (``client(x) = noise(h(x))``, as
    :class:`Obfuscator`) this is ``h``, exactly ``Obfuscator.features``: what multi-query
    averaging and keyed noise add their noise to, and what an attacker who knows ``ε`` sees.
    """

    def __init__(self, client: nn.Module, noise: GaussianNoise) -> None:
        super().__init__()
        self.client = client
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with noise_switched_off(self.noise):
            return self.client(x)
