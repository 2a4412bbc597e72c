"""Small helpers of every attack: a frozen client, sums over ranks, a noise stream per rank.

Under torchrun (``context.distributed`` with several ranks) every attack trains on each rank's
shard of the global batches, averages gradients in ``context.step`` and sums its scores over
ranks (:func:`reduced_sum`), exactly as the training loop does.
"""

from __future__ import annotations

import torch
from torch import nn

from noisyarl.evaluation.statistics import Interval, t_interval_of_sums
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


def psnr_gain(per_draw: list[torch.Tensor], context: StepContext | None = None) -> Interval:
    """Mean per-image PSNR gain over the mean training image (dB) with its t interval over the
    test images.

    per_draw: one tensor [n] per noise draw of ``per_image_psnr(attack) − per_image_psnr(mean
    image)`` on the same images in the same order; each image's gain is averaged over the draws
    first (the images are the samples). With ``context``, each rank holds a shard of the images
    and the sums are taken over ranks; without it, the images are all here.
    """
    gains = torch.stack([draw.double().cpu() for draw in per_draw]).mean(dim=0)
    sums = torch.stack([torch.tensor(float(gains.numel()), dtype=torch.float64),
                        gains.sum(), gains.square().sum()])
    if context is not None:
        sums = all_reduce_sum(sums, context.distributed).cpu()
    count, total, total_of_squares = sums.tolist()
    return t_interval_of_sums(int(count), total, total_of_squares)


def reseed_rank(seed: int, context: StepContext) -> None:
    """Under torchrun give each rank its own stream for the noise of ``z``; no-op alone."""
    if context.distributed.enabled:
        torch.manual_seed(rank_seed(seed, context.distributed.rank))
