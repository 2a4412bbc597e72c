"""Mixed precision, memory format and optimiser steps shared by defences, training and attacks.

:class:`StepContext` is the one place where a step meets the hardware: autocast, the fp16
gradient scaler, channels-last inputs and modules, and (under ``torchrun``) the gradient
average over ranks (see :mod:`noisyarl.runtime.distributed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch

from noisyarl.runtime.distributed import (
    DistributedEnv,
    average_gradients,
    broadcast_module,
    convert_batchnorm,
    current_env,
)

PRECISIONS = ("fp32", "bf16", "fp16")


class StepContext:
    """How a training step runs: autocast precision, gradient scaling, memory format, ranks.

    ``precision``: ``fp32`` (no autocast), ``bf16`` (autocast to bfloat16 on CPU or CUDA), or
    ``fp16`` (autocast to float16 with one gradient scaler per optimiser; CUDA only, for GPUs
    without bf16).
    ``channels_last``: inputs and models use the NHWC memory format.
    ``distributed``: this process's rank and world size (default: the torchrun process group
    this process belongs to, if any); with more than one process every
    :meth:`step` averages the stepped optimiser's gradients over ranks, and
    :meth:`prepare_module` synchronises batch-norm statistics and the initial weights.
    """

    def __init__(self, device: torch.device, precision: str = "fp32",
                 channels_last: bool = False, distributed: DistributedEnv | None = None):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device; use bf16 on CPU")
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
        self.distributed = distributed if distributed is not None else current_env()
        self._scalers: dict[int, torch.amp.GradScaler] = {}

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.precision == "fp32":
            yield
            return
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        with torch.autocast(device_type=self.device.type, dtype=dtype):
            yield

    def step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        """Zero ``optimizer``'s gradients, back-propagate ``loss`` into its parameters and step
        it (:meth:`joint_step` with one update)."""
        self.joint_step([(loss, optimizer)])

    def joint_step(self, updates: Sequence[tuple[torch.Tensor, torch.optim.Optimizer]]) -> None:
        """Update several optimisers from losses of one forward graph, each loss into its own
        optimiser's parameters only.

        Zeroes every optimiser's gradients, back-propagates each ``loss`` with
        ``backward(inputs=its optimiser's parameters)`` (the graph kept until the last), then
        steps every optimiser in order. Parameters of other optimisers receive nothing, and a
        backward pass computes only the gradients on its way to its own parameters. Under
        torchrun each optimiser's gradients are averaged over ranks before its update. No
        host-device synchronisation, except fp16's scalers (one per optimiser), which read
        whether the scaled gradients overflowed to skip that update.
        """
        parameters = [_trainable(optimizer) for _, optimizer in updates]
        for _, optimizer in updates:
            optimizer.zero_grad(set_to_none=True)
        for index, ((loss, optimizer), inputs) in enumerate(zip(updates, parameters, strict=True)):
            if not inputs:  # nothing left to train in this optimiser
                continue
            if self.precision == "fp16":
                loss = self._scaler(optimizer).scale(loss)
            loss.backward(inputs=inputs, retain_graph=index < len(updates) - 1)
        for (_, optimizer), inputs in zip(updates, parameters, strict=True):
            # Averaged before the scaler's overflow check: every rank skips or takes the step.
            average_gradients(inputs, self.distributed)
            if self.precision == "fp16":
                scaler = self._scaler(optimizer)
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()

    def _scaler(self, optimizer: torch.optim.Optimizer) -> torch.amp.GradScaler:
        return self._scalers.setdefault(id(optimizer), torch.amp.GradScaler("cuda"))

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def prepare_module(self, module: torch.nn.Module) -> torch.nn.Module:
        """``module`` on the device, channels-last if asked; under torchrun with batch norm
        synchronised over ranks and rank 0's initial weights on every rank."""
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        if self.distributed.enabled:
            module = convert_batchnorm(module)
            broadcast_module(module, self.distributed)
        return module


def _trainable(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The parameters ``optimizer`` updates that take gradients."""
    return [p for group in optimizer.param_groups for p in group["params"] if p.requires_grad]
