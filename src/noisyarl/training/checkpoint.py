"""Checkpoints: atomic writes, safe loads (``weights_only=True``), the run's config inside."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from noisyarl.utils.io import atomic_torch_save


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, state dicts, plain Python values) atomically to ``path``."""
    atomic_torch_save(state, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; never unpickles arbitrary objects."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)
