"""What every attack shares: a frozen client that turns image batches into ``z``."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit
from noisyarl.training.precision import StepContext


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
) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(images [B,3,S,S], z [B,...] float32, labels)``; z gets fresh noise every call.

    Attack data is never augmented: the attacker sees the obfuscations of the split's own images.
    A shuffled (training) pass drops its final partial batch, as the training loop does: a
    batch of one sample would break the batch norm of MLP attackers.
    """
    drop_last = shuffle and len(split) > batch_size
    for images, labels in iterate_batches(split, batch_size, shuffle=shuffle, augment=False,
                                          generator=generator, drop_last=drop_last,
                                          device=context.device,
                                          channels_last=context.channels_last):
        with torch.no_grad(), context.autocast():
            z = client(images)
        yield images, z.float(), labels
