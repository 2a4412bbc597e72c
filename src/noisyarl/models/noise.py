"""The noise module of noisy ARL: ``z = h + sigma * eps``, ``eps ~ N(0, I)`` (docs/method.md §2).

Optionally ``h`` is first rescaled per sample to unit RMS (``normalize=True``), so that σ means
the same at every training length; :func:`signal_stats` and :func:`measure_signal` report how
large ``h`` is against σ (``σ_eff = σ / SD(h)``, docs/method.md §2).
"""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

#: Added to the mean square before the square root of the per-sample RMS (h = 0 stays 0).
RMS_EPS = 1e-12


def unit_rms(h: torch.Tensor) -> torch.Tensor:
    """``h`` [B, ...] rescaled per sample to unit RMS: ``h / sqrt(mean(h²) + 1e-12)``, float32.

    The mean runs over all non-batch dimensions, so one image is normalised on its own (as on
    a device). Plain tensor ops only: it traces and exports to ONNX.
    """
    h = h.float()
    dims = tuple(range(1, h.dim()))
    return h / torch.sqrt(h.pow(2).mean(dim=dims, keepdim=True) + RMS_EPS)


class NoiseSource(nn.Module, ABC):
    """Base of the client modules that add fresh random noise to their input on every call.

    ``enabled`` is the explicit switch: ``noisyarl export --no-noise`` and the export check
    switch off every noise source of a client, whatever its distribution. :attr:`noise_std` is
    the standard deviation of the noise the module adds now, over all elements of its output
    (0 when it adds none); an export's residual is checked against it. Subclasses:
    :class:`GaussianNoise` (σ, known to the attacks through
    :meth:`noisyarl.methods.Defence.noise_module`) and learned noise such as Shredder's.
    """

    enabled: bool
    #: Whether the module rescales its input per sample to unit RMS before adding noise.
    normalize: bool

    @property
    @abstractmethod
    def noise_std(self) -> float:
        """Standard deviation of the added noise over all output elements (0 when off)."""

    def signal(self, h: torch.Tensor) -> torch.Tensor:
        """The noise-free representation [B, ...]: ``h`` per-sample unit-RMS if ``normalize``."""
        return unit_rms(h) if self.normalize else h


class GaussianNoise(NoiseSource):
    """Adds isotropic Gaussian noise of standard deviation ``sigma`` to its input.

    ``forward(h)`` maps ``h`` [B, ...] to ``z = h' + sigma * eps`` [B, ...], where ``h'`` is
    ``h`` itself, or with ``normalize=True`` ``h`` rescaled per sample to unit RMS
    (:func:`unit_rms`), so that σ is measured in units of the features' own scale.

    As in the authors' code the noise does not depend on ``train()``/``eval()``: it is drawn afresh
    on every forward pass in training, evaluation, attacks and deployment. ``enabled=False`` is an
    explicit switch for ablations, recorded in results. The normalisation is part of the
    representation: it stays applied when the additive noise is off (``enabled=False``,
    ``sigma = 0`` or :func:`noise_switched_off`); only ``sigma * eps`` goes.

    >>> noise = GaussianNoise(sigma=2.0).eval()
    >>> h = torch.zeros(4, 8, 3, 3)
    >>> bool((noise(h) != 0).any())
    True
    >>> GaussianNoise(sigma=2.0, enabled=False)(h).abs().sum()
    tensor(0.)
    >>> GaussianNoise(sigma=0.0, normalize=True)(torch.full((1, 4), 3.0))
    tensor([[1., 1., 1., 1.]])
    """

    def __init__(self, sigma: float, enabled: bool = True, normalize: bool = False) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.enabled = bool(enabled)
        self.normalize = bool(normalize)

    @property
    def active(self) -> bool:
        """Whether :meth:`forward` adds noise (enabled and σ > 0); says nothing of ``normalize``."""
        return self.enabled and self.sigma > 0

    @property
    def noise_std(self) -> float:
        """σ when the noise is on (:attr:`active`), else 0."""
        return self.sigma if self.active else 0.0

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.signal(h)
        if not self.active:
            return h
        # Drawn and added in float32 even under bf16/fp16 autocast: a bfloat16 draw and sum
        # keep 8 bits of mantissa, which at large σ wipes out the features' small variations.
        # Drawn in logical (NCHW) order whatever h's memory layout, so that the same seed gives
        # the same noise under channels_last and torch.compile (the default, preserve_format,
        # would follow h's strides and place the same draws at other positions).
        noise = torch.randn_like(h, dtype=torch.float32, memory_format=torch.contiguous_format)
        return h.float() + self.sigma * noise

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}, enabled={self.enabled}, normalize={self.normalize}"


class Obfuscator(nn.Module):
    """Client model: a feature extractor followed by a noise module (noisy ARL's
    :class:`GaussianNoise`, or learned noise such as Shredder's).

    ``forward(x)`` maps images [B, 3, H, W] in [0, 1] to the transmitted ``z`` [B, C, H', W'];
    ``features(x)`` gives the noise-free ``h`` (normalised when the noise module normalises).
    """

    def __init__(self, extractor: nn.Module, noise: NoiseSource) -> None:
        super().__init__()
        self.extractor = extractor
        self.noise = noise

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.noise.signal(self.extractor(x))

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
def noise_switched_off(noise: NoiseSource) -> Iterator[None]:
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
    :class:`Obfuscator`) this is ``h`` (normalised, when the noise module normalises), exactly
    ``Obfuscator.features``: what multi-query
    averaging and keyed noise add their noise to, and what an attacker who knows ``ε`` sees.
    """

    def __init__(self, client: nn.Module, noise: GaussianNoise) -> None:
        super().__init__()
        self.client = client
        self.noise = noise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with noise_switched_off(self.noise):
            return self.client(x)


@dataclass(frozen=True)
class SignalStats:
    """How large the noise-free features ``h`` are against the noise σ (docs/method.md §2).

    rms: ``sqrt(mean(h²))`` over every element of every image. between_sd: ``SD(h)``, the
    root-mean over elements of the variance of ``h`` across images: how much ``h`` varies
    between images, which is what the noise has to hide. sigma: the noise's σ (0: no noise).
    All three are in the units of ``h``.
    """

    rms: float
    between_sd: float
    sigma: float

    @property
    def sigma_eff(self) -> float:
        """``σ / SD(h)``: the noise-to-signal ratio per element (inf for constant ``h``)."""
        if self.sigma == 0:
            return 0.0
        if self.between_sd == 0:
            return math.inf
        return self.sigma / self.between_sd

    def to_dict(self) -> dict[str, float]:
        """``{"h_rms", "h_sd", "sigma_eff"}`` as floats (a JSON writer turns inf into null)."""
        return {"h_rms": self.rms, "h_sd": self.between_sd, "sigma_eff": self.sigma_eff}


@dataclass(frozen=True)
class _Moments:
    """Per-element moments of ``h`` across images, in float64: the number of images, the mean
    [...] and the sum of squared deviations from it [...] (mergeable batch by batch)."""

    count: int
    mean: torch.Tensor
    m2: torch.Tensor

    @classmethod
    def of(cls, h: torch.Tensor) -> _Moments:
        h = h.detach().double()
        mean = h.mean(dim=0)
        return cls(h.shape[0], mean, (h - mean).pow(2).sum(dim=0))

    def merge(self, other: _Moments) -> _Moments:
        # Chan et al.'s pairwise update: no E[h²] − E[h]² cancellation for large offsets.
        count = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / count)
        m2 = self.m2 + other.m2 + delta.pow(2) * (self.count * other.count / count)
        return _Moments(count, mean, m2)

    def stats(self, sigma: float) -> SignalStats:
        variance = self.m2 / self.count
        rms = float((self.mean.pow(2) + variance).mean().sqrt())
        return SignalStats(rms=rms, between_sd=float(variance.mean().sqrt()), sigma=float(sigma))


def signal_stats(h: torch.Tensor, sigma: float) -> SignalStats:
    """:class:`SignalStats` of noise-free features ``h`` [N, ...] of N images and noise ``sigma``.

    ``σ_eff = σ / SD(h)`` is the noise-to-signal ratio per element, with ``SD(h)`` the spread of
    ``h`` across images (variance over dim 0, ``unbiased=False``), not its size: a constant
    offset shared by all images counts in ``rms`` but hides nothing.
    """
    if h.dim() < 1 or h.shape[0] == 0:
        raise ValueError(f"h must hold at least one image [N, ...], got shape {list(h.shape)}")
    return _Moments.of(h).stats(sigma)


@torch.no_grad()
def measure_signal(client: nn.Module, noise: GaussianNoise | None, images: torch.Tensor,
                   batch_size: int = 256) -> SignalStats:
    """:class:`SignalStats` of ``client``'s noise-free output on ``images`` [N, 3, S, S].

    images: float in [0, 1], on the client's device. ``client`` runs in eval mode with ``noise``
    (its noise module) switched off, ``batch_size`` images at a time, and gets its train/eval
    modes back afterwards. The stats' σ is the noise the client adds: ``noise.sigma``, or 0
    when ``noise`` is switched off. When ``noise`` is None, every
    :class:`NoiseSource` inside ``client`` (learned noise such as Shredder's) is switched off
    instead, and σ is the ``noise_std`` of the one such source (0 without one: ``h`` is then the
    client's output).
    """
    if images.shape[0] == 0:
        raise ValueError("measure_signal needs at least one image")
    sources = [noise] if noise is not None else [
        module for module in client.modules() if isinstance(module, NoiseSource)]
    sigma = sources[0].noise_std if len(sources) == 1 else 0.0
    modes = [(module, module.training) for module in client.modules()]
    client.eval()
    try:
        with contextlib.ExitStack() as switched_off:
            for source in sources:
                switched_off.enter_context(noise_switched_off(source))
            total = _Moments.of(client(images[:batch_size]))
            for start in range(batch_size, images.shape[0], batch_size):
                total = total.merge(_Moments.of(client(images[start:start + batch_size])))
    finally:
        for module, training in modes:
            module.training = training
    return total.stats(sigma)
