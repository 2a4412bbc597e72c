"""Small helpers of every attack: a frozen client, sums over ranks, a noise stream per rank.

Under torchrun (``context.distributed`` with several ranks) every attack trains on each rank's
shard of the global batches, averages gradients in ``context.step`` and sums its scores over
ranks (:func:`reduced_sum`), exactly as the training loop does.
"""

from __future__ import annotations

import torch
from torch import nn

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


def reduced_sum(value: torch.Tensor, context: StepContext) -> float:
    """``value`` summed over ranks, as a Python float (one host read)."""
    return float(all_reduce_sum(value, context.distributed))


def reseed_rank(seed: int, context: StepContext) -> None:
    """Under torchrun give each rank its own stream for the noise of ``z``; no-op alone."""
    if context.distributed.enabled:
        torch.manual_seed(rank_seed(seed, context.distributed.rank))
