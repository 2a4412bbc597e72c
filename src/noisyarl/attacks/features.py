"""Features of ``z`` shared by the attacks: one noisy pass of the client over a split, pooled
to a fixed-length vector and standardised by the training split's statistics.

The linear and MLP attackers, the k-NN attacker and the identity attack all read z through
these helpers, so they see the same representation.
"""

from __future__ import annotations

import torch
from torch import nn

from noisyarl.attacks.view import ZView
from noisyarl.data.base import ImageSplit

#: Side of the average-pooled grid of the linear, MLP and k-NN attackers (project's choice:
#: keeps a coarse layout of the map while pooling most of the per-element noise).
POOL_SIDE = 2


class FeaturePool(nn.Module):
    """z [B, C, h, w] -> [B, C · s · s] by adaptive average pooling to ``s = min(side, h, w)``;
    a vector z [B, D] passes unchanged."""

    def __init__(self, side: int = POOL_SIDE) -> None:
        super().__init__()
        self.side = side

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 2:
            return z
        side = (min(self.side, z.shape[-2]), min(self.side, z.shape[-1]))
        return nn.functional.adaptive_avg_pool2d(z, side).flatten(1)


def pooled_dim(z_shape: tuple[int, ...], side: int = POOL_SIDE) -> int:
    """Length of :class:`FeaturePool`'s output for one sample of shape ``z_shape``."""
    if len(z_shape) == 1:
        return int(z_shape[0])
    channels, height, width = z_shape
    return int(channels * min(side, height) * min(side, width))


@torch.no_grad()
def collect_features(
    view: ZView,
    split: ImageSplit,
    *,
    batch_size: int = 256,
    pool_side: int = POOL_SIDE,
) -> torch.Tensor:
    """One noisy pass of ``view`` over ``split``, pooled: float32 [N, D] on the CPU."""
    pool = FeaturePool(pool_side)
    chunks = [pool(z).cpu() for _, z, _ in view.batches(split, batch_size, shard=False)]
    return torch.cat(chunks)


def standardise(train: torch.Tensor, *others: torch.Tensor) -> list[torch.Tensor]:
    """Centre and scale every feature by the mean and standard deviation of ``train`` [N, D]."""
    mean, std = train.mean(dim=0), train.std(dim=0).clamp_min(1e-6)
    return [(features - mean) / std for features in (train, *others)]
