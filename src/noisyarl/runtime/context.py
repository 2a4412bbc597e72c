"""Mixed precision, memory format and optimiser steps shared by defences, training and attacks.

:class:`StepContext` is the one place where a step meets the hardware: autocast, the fp16
gradient scaler, channels-last inputs and modules, and (under ``torchrun``) the gradient
average over ranks (see :mod:`noisyarl.runtime.distributed`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

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
        """Zero ``optimizer``'s gradients, back-propagate ``loss`` and step ``optimizer``.

        Only the parameters of ``optimizer`` move; gradients that ``loss`` leaves on other
        parameters are cleared by their own optimiser's next ``step`` call. Under torchrun the
        gradients of ``optimizer``'s parameters are averaged over ranks before the update.
        No host-device synchronisation, except fp16's scaler, which reads whether the scaled
        gradients overflowed to skip that update.
        """
        optimizer.zero_grad(set_to_none=True)
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        if self.precision != "fp16":
            loss.backward()
            average_gradients(parameters, self.distributed)
            optimizer.step()
            return
        scaler = self._scalers.setdefault(id(optimizer), torch.amp.GradScaler("cuda"))
        scaler.scale(loss).backward()
        # Averaged before the scaler's overflow check, so every rank skips or takes the same step.
        average_gradients(parameters, self.distributed)
        scaler.step(optimizer)
        scaler.update()

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
