"""What every attack shares: a frozen client that turns image batches into ``z``.

Under torchrun (``context.distributed`` with several ranks) every attack trains on each rank's
shard of the global batches, averages gradients in ``context.step`` and sums its scores over
ranks (:func:`reduced_sum`), exactly as the training loop does.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit
from noisyarl.runtime import StepContext
from noisyarl.runtime.distributed import all_reduce_sum, rank_seed


def freeze(client: nn.Module) -> nn.Module:
    """Put the client in eval mode with gradients off (BN uses its running statistics).

    The noise module ignores the mode: attacks see noisy ``z`` exactly as deployed.
    """
    client.eval()
    for parameter in client.parameters():
        parameter.requires_grad_(False)
    return client


def obfuscated_batches(
    client: nn.Module,
    split: ImageSplit,
    batch_size: int,
    context: StepContext,
    *,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    shard: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(images [B,3,S,S], z [B,...] float32, labels)``; z gets fresh noise every call.

    Attack data is never augmented: the attacker sees the obfuscations of the split's own images.
    A shuffled (training) pass drops its final partial batch, as the training loop does: a
    batch of one sample would break the batch norm of MLP attackers.
    shard: under torchrun, yield only this rank's shard of every (global) batch.
    """
    drop_last = shuffle and len(split) > batch_size
    env = context.distributed
    rank, world_size = (env.rank, env.world_size) if shard else (0, 1)
    for images, labels in iterate_batches(split, batch_size, shuffle=shuffle, augment=False,
                                          generator=generator, drop_last=drop_last,
                                          device=context.device,
                                          channels_last=context.channels_last,
                                          rank=rank, world_size=world_size):
        with torch.no_grad(), context.autocast():
            z = client(images)
        yield images, z.float(), labels


def reduced_sum(value: torch.Tensor, context: StepContext) -> float:
    """``value`` summed over ranks, as a Python float (one host read)."""
    return float(all_reduce_sum(value, context.distributed))


def reseed_rank(seed: int, context: StepContext) -> None:
    """Under torchrun give each rank its own stream for the noise of ``z``; no-op alone."""
    if context.distributed.enabled:
        torch.manual_seed(rank_seed(seed, context.distributed.rank))
