"""Evaluation metrics: the privacy-utility gap, image similarity, Cramér's V, ROC AUC and
re-identification rate.

All functions are pure: they read tensors (or arrays) and return Python numbers.

Conventions
-----------
* :func:`privacy_utility_delta` takes accuracies in **percent**, as in the paper's tables.
* Images are float tensors [N, C, H, W] with values in [0, 1] and ``data_range = 1``. Values
  outside [0, 1] (beyond :data:`RANGE_TOLERANCE`) raise ``ValueError`` so that 0-255 images
  are never scored as if they were [0, 1] images.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

#: How far outside [0, 1] an image value may lie (rounding, bfloat16 outputs) before it is an error.
RANGE_TOLERANCE = 1e-3

#: Smallest height and width for which :func:`ms_ssim` returns a value: five scales, each halving
#: the image, with the 11x11 window still fitting the coarsest scale (torchmetrics requires
#: ``side // 16 > 10``).
MS_SSIM_MIN_SIZE = 176


def privacy_utility_delta(utility_acc_pct: float, privacy_acc_pct: float) -> float:
    """Δ = utility accuracy − privacy (attacker) accuracy, in percentage points; higher is better.

    >>> round(privacy_utility_delta(53.82, 23.40), 2)  # paper table 1, MaxEnt
    30.42
    """
    return float(utility_acc_pct) - float(privacy_acc_pct)


def psnr(x: torch.Tensor, y: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB, ``10·log10(1 / MSE)`` per image, averaged over the batch.

    Args:
        x, y: [N, C, H, W] images in [0, 1] (data_range = 1).

    Returns:
        Mean per-image PSNR in dB; ``inf`` if any image pair is identical.

    >>> x = torch.full((2, 3, 8, 8), 0.5)
    >>> round(psnr(x, x + 0.1), 3)  # MSE = 0.01 -> 20 dB
    20.0
    """
    x, y = _checked_images(x, y)
    per_image = peak_signal_noise_ratio(x, y, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return float(per_image.mean())


def ssim(x: torch.Tensor, y: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004), averaged over the batch.

    torchmetrics' implementation: 11x11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03,
    data_range = 1, each channel filtered separately; the images are reflect-padded by 5 pixels so
    the SSIM map has the input's H x W size, and the map is averaged over channels and pixels.

    Args:
        x, y: [N, C, H, W] images in [0, 1], H and W at least 6 (for the reflection padding).

    Returns:
        Mean SSIM in [-1, 1]; 1 for identical images.

    >>> x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    >>> ssim(x, x)
    1.0
    """
    x, y = _checked_images(x, y)
    value = structural_similarity_index_measure(x, y, data_range=1.0)
    return float(value)


def ms_ssim(x: torch.Tensor, y: torch.Tensor) -> float | None:
    """Multi-scale SSIM (Wang et al. 2003; five scales, standard weights), batch mean.

    torchmetrics' implementation with data_range = 1 and its default ``normalize="relu"``
    (negative contrast terms are clipped to 0, which keeps badly reconstructed images from giving
    NaN under the fractional exponents).

    Args:
        x, y: [N, C, H, W] images in [0, 1].

    Returns:
        The mean MS-SSIM, or ``None`` if H or W is below :data:`MS_SSIM_MIN_SIZE` (176 px).

    >>> x = torch.rand(1, 3, 32, 32)
    >>> ms_ssim(x, x) is None
    True
    >>> round(ms_ssim(torch.ones(1, 3, 176, 176) * 0.5, torch.ones(1, 3, 176, 176) * 0.5), 4)
    1.0
    """
    x, y = _checked_images(x, y)
    if min(x.shape[-2:]) < MS_SSIM_MIN_SIZE:
        return None
    value = multiscale_structural_similarity_index_measure(x, y, data_range=1.0)
    return float(value)


def cramers_v(a, b) -> float:
    """Cramér's V between two categorical label arrays (association strength in [0, 1]).

    ``V = sqrt(χ² / (n · (min(r, c) − 1)))`` from the r x c contingency table of the observed
    label values; plain Pearson χ² (no Yates continuity correction), no bias correction.
    Returns 0 when either column has a single value.

    Args:
        a, b: [N] integer labels (NumPy arrays, tensors or sequences).

    >>> cramers_v([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> cramers_v([0, 1, 0, 1], [0, 0, 1, 1])
    0.0
    >>> cramers_v([0, 1, 2], [5, 5, 5])
    0.0
    """
    table = contingency_table(a, b)
    rows, columns = table.shape
    if min(rows, columns) < 2:
        return 0.0
    total = float(table.sum())
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    chi_square = float(((table - expected) ** 2 / expected).sum())
    value = np.sqrt(chi_square / (total * (min(rows, columns) - 1)))
    return float(np.clip(value, 0.0, 1.0))


def contingency_table(a, b) -> np.ndarray:
    """Integer counts [r, c] of each (a value, b value) pair; rows and columns are the distinct
    values that occur in ``a`` and ``b``, in sorted order.

    >>> contingency_table([0, 0, 1], [2, 3, 3]).tolist()
    [[1, 1], [0, 1]]
    """
    a, b = _as_label_array(a), _as_label_array(b)
    if a.shape != b.shape:
        raise ValueError(f"label arrays differ in length: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("contingency table of empty label arrays")
    _, row_index = np.unique(a, return_inverse=True)
    _, column_index = np.unique(b, return_inverse=True)
    table = np.zeros((row_index.max() + 1, column_index.max() + 1), dtype=np.int64)
    np.add.at(table, (row_index, column_index), 1)
    return table


def roc_auc(scores, positive) -> float:
    """Area under the ROC curve: the probability that a random positive outranks a random
    negative, ties counting one half (the Mann-Whitney U statistic over n_pos · n_neg).

    Args:
        scores: [N] real scores, higher meaning "more likely positive" (e.g. the similarity of a
            pair of images). positive: [N] booleans (e.g. "the pair shows the same person").

    Returns:
        AUC in [0, 1]; 0.5 is chance. Raises ``ValueError`` without both classes.

    >>> roc_auc([0.9, 0.8, 0.3, 0.1], [True, True, False, False])
    1.0
    >>> roc_auc([0.9, 0.5, 0.5, 0.1], [True, True, False, False])
    0.875
    """
    scores = np.asarray(_as_array(scores), dtype=np.float64)
    positive = np.asarray(_as_array(positive)).astype(bool)
    if scores.ndim != 1 or scores.shape != positive.shape:
        raise ValueError(f"scores and positive must be [N] arrays of one length, got "
                         f"{scores.shape} and {positive.shape}")
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs at least one positive and one negative")
    ranks = _average_ranks(scores)
    u_statistic = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u_statistic / (n_pos * n_neg))


def top1_identification_rate(similarity, identities) -> float:
    """Leave-one-out re-identification: the share of probes whose most similar *other* sample
    shows the same identity.

    Only probes whose identity occurs at least twice count (the others cannot be matched).

    Args:
        similarity: [N, N] pairwise similarities (higher = more alike); the diagonal is ignored.
        identities: [N] integer identity labels.

    Returns:
        Rate in [0, 1]. Raises ``ValueError`` when no identity occurs twice.

    >>> similarity = torch.tensor([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    >>> top1_identification_rate(similarity, torch.tensor([7, 7, 8]))
    1.0
    """
    similarity = torch.as_tensor(similarity, dtype=torch.float64).clone()
    identities = torch.as_tensor(identities).long().reshape(-1)
    n = identities.shape[0]
    if similarity.shape != (n, n):
        raise ValueError(f"similarity must be [N, N] with N = {n}, got {tuple(similarity.shape)}")
    same = identities[:, None] == identities[None, :]
    matchable = same.sum(dim=1) > 1
    if not bool(matchable.any()):
        raise ValueError("top-1 identification needs an identity with at least two samples")
    similarity.fill_diagonal_(-math.inf)
    nearest = similarity.argmax(dim=1)
    hits = identities[nearest] == identities
    return float(hits[matchable].double().mean())


def _as_array(values) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().numpy()
    return np.asarray(values)


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks of ``values``; tied values share their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], values.size]
    average = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(average, ends - starts)
    return ranks


def _as_label_array(labels) -> np.ndarray:
    if isinstance(labels, torch.Tensor):
        labels = labels.detach().cpu().numpy()
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {array.shape}")
    return array


def _checked_images(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate an image pair and return it as float tensors clamped to exactly [0, 1]."""
    if x.shape != y.shape or x.dim() != 4:
        raise ValueError(
            f"expected two [N, C, H, W] images of one shape, got {tuple(x.shape)}, {tuple(y.shape)}"
        )
    x, y = x.detach(), y.detach()
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.float()
    y = y.to(x.dtype)
    for name, image in (("x", x), ("y", y)):
        low, high = float(image.min()), float(image.max())
        if not (low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE):
            raise ValueError(
                f"{name} has values in [{low:.4g}, {high:.4g}]; images must lie in [0, 1] "
                "(divide 0-255 images by 255)"
            )
    return x.clamp(0, 1), y.clamp(0, 1)


__all__ = [
    "MS_SSIM_MIN_SIZE",
    "RANGE_TOLERANCE",
    "contingency_table",
    "cramers_v",
    "ms_ssim",
    "privacy_utility_delta",
    "psnr",
    "roc_auc",
    "ssim",
    "top1_identification_rate",
]
