"""The proxy adversary's own update, shared by every adversarial defence.

Noisy ARL, MaxEnt-ARL, DeepObfuscator and DISCO train their proxy adversaries the same way
(docs/method.md §2, §5): after the client's step, each adversary descends its own loss on the
detached ``z``, so that its step never moves the client.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from noisyarl.runtime import StepContext


def adversary_step(
    adversary: nn.Module,
    z: torch.Tensor,
    loss: Callable[[torch.Tensor], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    context: StepContext,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of ``adversary`` on ``z.detach()``; the client that made ``z`` does not move.

    ``loss`` maps the adversary's outputs to its scalar loss (the private task's
    :meth:`~noisyarl.data.tasks.Task.loss`, a reconstruction error). The forward pass and the
    loss run under ``context.autocast()``; ``context.step`` zeroes ``optimizer``'s gradients,
    back-propagates and steps it. Returns (the adversary's outputs, its detached loss).
    """
    with context.autocast():
        outputs = adversary(z.detach())
        value = loss(outputs)
    context.step(value, optimizer)
    return outputs, value.detach()


__all__ = ["adversary_step"]
