"""The one seeding block of a run (CleanRL style): every random source derives from ``seed``."""

from __future__ import annotations

import random

import numpy as np
import torch

#: Offsets that give each phase of a run its own reproducible random stream.
PHASE_OFFSETS = {"train": 0, "leakage": 1_000_003, "reconstruction": 2_000_003,
                 "utility_test": 3_000_017}


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int, phase: str = "train") -> torch.Generator:
    """A CPU generator for one epoch's shuffling and augmentation.

    Deriving it from (seed, phase, epoch) makes an epoch's batches independent of what ran before,
    so a resumed run sees exactly the batches of an uninterrupted one.
    """
    return torch.Generator().manual_seed(seed * 7919 + PHASE_OFFSETS[phase] + epoch)
