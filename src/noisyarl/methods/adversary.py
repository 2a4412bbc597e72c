"""One update of the client and its proxy adversaries from one forward pass, shared by every
adversarial defence.

Noisy ARL, MaxEnt-ARL, DeepObfuscator and DISCO train a client against proxy adversaries
(docs/method.md §2, §5). Per batch, each computes from one forward pass the client's objective
(which pushes against the adversaries, e.g. ``L_util - lambda * L_adv``) and each adversary's own
loss (e.g. ``L_adv``); :func:`adversarial_update` back-propagates each loss into its own
parameters only and steps every optimiser (:meth:`StepContext.joint_step`). An adversary's loss
never moves the client, and the client's objective never moves an adversary.

This equals the two-pass step (client step, then a second adversary forward/backward on
``z.detach()``): the client's step does not touch the adversary and ``z`` is the same tensor, so
the adversary's gradients are the same (with dropout in an adversary, its update now uses the
mask the client's objective saw rather than a second one). The second forward is saved (+40 %
FLOPs per step at K = 1, +18 % at K = 3 for noisy ARL) and batch-norm running statistics are
updated once per batch. The authors' code reaches the same by one backward whose adversary
gradient it rescales by ``-1 / lambda``; ``backward(inputs=...)`` needs no such division
(MaxEnt's client and adversary optimise different functions of the same adversary output).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from noisyarl.runtime import StepContext


def adversarial_update(
    client_loss: torch.Tensor,
    adversary_losses: Mapping[str, torch.Tensor],
    optimizers: Mapping[str, torch.optim.Optimizer],
    context: StepContext,
) -> None:
    """Step ``optimizers["main"]`` (client and utility head) on ``client_loss`` and, for each
    ``name, loss`` of ``adversary_losses``, ``optimizers[name]`` on that adversary's own loss.

    Every loss is a scalar computed in one forward pass under ``context.autocast()``; each is
    back-propagated into the parameters of its own optimiser alone.
    """
    updates = [(client_loss, optimizers["main"])]
    updates += [(loss, optimizers[name]) for name, loss in adversary_losses.items()]
    context.joint_step(updates)


__all__ = ["adversarial_update"]
