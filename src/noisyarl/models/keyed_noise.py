"""Keyed noise: the same image always gets the same noise, so averaging repeated queries of it
gains nothing.

Noisy ARL draws ``ε`` afresh on every query (docs/method.md §2). An attacker who receives k
obfuscations of the *same* image (retries, a static video) averages them and sees
``h + σ·ε̄`` with ``std(ε̄) = 1/√k``. :class:`KeyedObfuscator` instead derives ``ε`` from a
secret key held on the client and the image's content::

    seed = first 8 bytes of HMAC-SHA256(key, shape ‖ uint8 pixels)      (per image)
    ε    = N(0, I) drawn by a torch CPU generator seeded with ``seed``
    z    = h + σ·ε

Each image's ε is still a standard normal draw (the trained utility head sees the noise
distribution it was trained with), but a repeated image yields the identical z.

Threat model — what it covers and what it does not:

- Covers: an attacker (the server or an eavesdropper) who collects any number of obfuscations of
  the *byte-identical* image and averages them: every copy is the same z.
- Does not cover near-duplicates: two video frames or re-encodings that differ in a single pixel
  level get independent noise, so averaging k near-duplicate frames is as effective as averaging
  k fresh queries (the fresh-noise rows of the multi-query table). Quantising coarser before
  hashing widens the class of identical inputs but cannot make it cover every near-duplicate.
- Does not cover key compromise: whoever knows the key regenerates ε and subtracts it, and sees
  the noise-free features ``h`` (the table's "key leaked" row). The key must stay on the device
  (e.g. a hardware-backed keystore) and should be random per device (:func:`new_key`).
- Does not change anything for a single query: the privacy of one z is that of the fresh-noise
  defence.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import torch
from torch import nn

from noisyarl.models.noise import GaussianNoise, find_noise_module, noise_switched_off

#: Bytes of the HMAC digest that seed the generator (a torch seed is a 64-bit integer).
SEED_BYTES = 8


def new_key() -> bytes:
    """A fresh random 256-bit client key (keep it on the device)."""
    return secrets.token_bytes(32)


def quantise(image: torch.Tensor) -> torch.Tensor:
    """An image [3, H, W] in [0, 1] as uint8 levels ``round(255 · x)``, contiguous on the CPU."""
    return (image.detach().float().cpu() * 255.0).round().clamp(0, 255).to(torch.uint8).contiguous()


def image_seed(key: bytes, image: torch.Tensor) -> int:
    """The generator seed of one image [3, H, W] in [0, 1]: HMAC-SHA256(key, shape ‖ pixels),
    first 8 bytes, little-endian, as a non-negative 63-bit integer."""
    pixels = quantise(image)
    message = str(tuple(pixels.shape)).encode() + pixels.numpy().tobytes()
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return int.from_bytes(digest[:SEED_BYTES], "little") & (2**63 - 1)


def keyed_normal(key: bytes, images: torch.Tensor, feature_shape: torch.Size) -> torch.Tensor:
    """Standard normal noise [B, *feature_shape] (CPU, float32), one deterministic draw per
    image of ``images`` [B, 3, H, W]."""
    draws = []
    for image in images:
        generator = torch.Generator().manual_seed(image_seed(key, image))
        draws.append(torch.randn(feature_shape, generator=generator))
    return torch.stack(draws)


class KeyedObfuscator(nn.Module):
    """A noisy client with keyed noise: ``z = h + σ·ε(key, image)``.

    Wraps a trained client (no retraining) and its noise module ``noise``, which adds
    ``σ·ε`` to the client's output (``client(x) = noise(h(x))``; default: the one
    :class:`GaussianNoise` inside ``client``, e.g. an
    :class:`~noisyarl.models.Obfuscator`'s, see
    :meth:`noisyarl.methods.Defence.noise_module`). ``h`` is the client's output with the noise
    module switched off. With the noise module off (σ = 0 or the ablation switch) z = h, as for
    the wrapped client.
    """

    def __init__(self, client: nn.Module, key: bytes, noise: GaussianNoise | None = None) -> None:
        super().__init__()
        if not isinstance(key, bytes | bytearray) or len(key) == 0:
            raise ValueError("key must be non-empty bytes")
        noise = noise if noise is not None else find_noise_module(client)
        if noise is None:
            raise ValueError("keyed noise needs a client with a noise module (GaussianNoise)")
        self.client = client
        self.noise = noise
        self.key = bytes(key)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The noise-free features ``h`` [B, ...] of images ``x``."""
        with noise_switched_off(self.noise):
            return self.client(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        if not self.noise.active:
            return h
        eps = keyed_normal(self.key, x, h.shape[1:]).to(device=h.device, dtype=h.dtype)
        return h + self.noise.sigma * eps

    def extra_repr(self) -> str:
        return "key=<secret>"


__all__ = ["KeyedObfuscator", "image_seed", "keyed_normal", "new_key", "quantise"]
