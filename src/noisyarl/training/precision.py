"""Devices, mixed precision and optimiser steps shared by training and attacks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is cuda but no CUDA device is available")
    return device


class StepContext:
    """How a training step runs: autocast precision and (for fp16) gradient scaling.

    ``precision``: ``fp32`` (no autocast), ``bf16`` (autocast to bfloat16 on CPU or CUDA), or
    ``fp16`` (autocast to float16 with a gradient scaler per optimiser; CUDA only).
    ``channels_last``: inputs and models use the NHWC memory format.
    """

    def __init__(self, device: torch.device, precision: str = "fp32", channels_last: bool = False):
        if precision == "fp16" and device.type != "cuda":
            raise ValueError("precision fp16 needs a CUDA device; use bf16 on CPU")
        self.device = device
        self.precision = precision
        self.channels_last = channels_last
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
        parameters are cleared by their own optimiser's next ``step`` call.
        """
        optimizer.zero_grad(set_to_none=True)
        if self.precision != "fp16":
            loss.backward()
            optimizer.step()
            return
        scaler = self._scalers.setdefault(id(optimizer), torch.amp.GradScaler("cuda"))
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def prepare_module(self, module: torch.nn.Module) -> torch.nn.Module:
        module = module.to(self.device)
        if self.channels_last:
            module = module.to(memory_format=torch.channels_last)
        return module
