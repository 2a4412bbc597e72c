"""Evaluation metrics: the privacy-utility gap, chance baselines, image similarity, Cramér's V,
ROC AUC and re-identification rate.

All functions are pure: they read tensors (or arrays) and return Python numbers.

Conventions
-----------
* :func:`privacy_utility_delta` takes accuracies in **percent**, as in the paper's tables.
* Chance is the floor (docs/method.md §7): an accuracy is read beside its split's majority rate
  (:func:`advantage`, :func:`beats_chance`, :func:`normalised_delta`), a reconstruction score
  beside the mean-image baseline (:func:`mean_image_baseline`; beyond it only when the
  per-image PSNR gain's interval lies above 0, :func:`beats_mean_image`).
* Images are float tensors [N, C, H, W] with values in [0, 1] and ``data_range = 1``. Values
  outside [0, 1] (beyond :data:`RANGE_TOLERANCE`) raise ``ValueError`` so that 0-255 images
  are never scored as if they were [0, 1] images.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torchmetrics.functional.image import (
    multiscale_structural_similarity_index_measure,
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

if TYPE_CHECKING:
    from noisyarl.evaluation.statistics import Interval

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


def advantage(score: float, chance: float) -> float:
    """Advantage over chance: ``score − chance`` in percentage points (both in percent).

    >>> round(advantage(61.5, 50.0), 2)
    11.5
    """
    return float(score) - float(chance)


def beats_chance(score: float, chance: float, n: int, *, alpha: float = 0.05) -> bool:
    """Whether accuracy ``score`` is significantly above the majority rate ``chance``.

    One-sided exact binomial test of H0 "the true accuracy is at most ``chance``": with
    ``k = round(score · n / 100)`` correct answers out of ``n`` test samples, H0 is rejected when
    ``P(X ≥ k) ≤ alpha`` for ``X ~ Binomial(n, chance / 100)``, i.e. when ``k`` lies above the
    ``1 − alpha`` quantile of that distribution. An observed accuracy at or below chance never
    beats it (so a constant predictor, ``score == chance``, does not); neither does any score when
    ``chance`` is 100 or ``n`` is 0.

    Args:
        score: accuracy in percent, in [0, 100].
        chance: the split's majority rate in percent, in [0, 100].
        n: number of test samples (≥ 0).
        alpha: significance level in (0, 1).

    >>> beats_chance(55.0, 50.0, 1000), beats_chance(55.0, 50.0, 100)
    (True, False)
    >>> beats_chance(50.0, 50.0, 10**6)
    False
    """
    _check_percent("score", score)
    _check_percent("chance", chance)
    if n < 0 or not 0 < alpha < 1:
        raise ValueError(f"need n >= 0 and 0 < alpha < 1, got n = {n}, alpha = {alpha}")
    correct = round(float(score) * n / 100)
    if n == 0 or chance >= 100 or correct <= float(chance) * n / 100:
        return False
    return binomial_upper_tail(correct, n, float(chance) / 100) <= alpha


def binomial_upper_tail(k: int, n: int, p: float) -> float:
    """``P(X ≥ k)`` for ``X ~ Binomial(n, p)``, summed exactly from log-gamma pmf terms.

    >>> round(binomial_upper_tail(2, 3, 0.5), 6)  # (3 + 1) / 8
    0.5
    """
    if k <= 0:
        return 1.0
    if k > n or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    log_n = math.lgamma(n + 1)
    terms = [log_n - math.lgamma(i + 1) - math.lgamma(n - i + 1) + i * log_p + (n - i) * log_q
             for i in range(k, n + 1)]
    peak = max(terms)
    # Factor out the largest term so the sum neither underflows nor loses the small terms.
    return min(1.0, math.exp(peak) * math.fsum(math.exp(t - peak) for t in terms))


def normalised_delta(
    utility: float, utility_chance: float, privacy: float, privacy_chance: float
) -> float | None:
    """Δ normalised by chance, in points (all arguments in percent):

    ``100 · [(U − U0) / (100 − U0) − (P − P0) / (100 − P0)]``

    the share of the possible gain over chance that the utility head ``U`` reaches, minus the
    share that the attacker ``P`` reaches (``U0``, ``P0``: the splits' majority rates). 100 means
    perfect utility with the attacker at chance, 0 the same relative gain for both, −100 a
    utility head at chance and a perfect attacker. Scores below chance give negative shares.

    Returns ``None`` when ``U0`` or ``P0`` is 100: a split with a single label leaves no gain to
    share, and the ratio is undefined.

    >>> normalised_delta(100.0, 50.0, 50.0, 50.0)
    100.0
    >>> normalised_delta(75.0, 50.0, 60.0, 20.0)
    0.0
    """
    for name, value in (("utility", utility), ("utility_chance", utility_chance),
                        ("privacy", privacy), ("privacy_chance", privacy_chance)):
        _check_percent(name, value)
    if utility_chance >= 100 or privacy_chance >= 100:
        return None
    utility_share = (utility - utility_chance) / (100.0 - utility_chance)
    privacy_share = (privacy - privacy_chance) / (100.0 - privacy_chance)
    return 100.0 * (utility_share - privacy_share)


def _check_percent(name: str, value: float) -> None:
    if not 0 <= value <= 100:
        raise ValueError(f"{name} must be a percentage in [0, 100], got {value}")


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


#: PSNR (dB) that :func:`per_image_psnr` gives an exact copy (MSE floored at 1e-10), so that
#: per-image figures stay finite for means and intervals.
PSNR_CAP_DB = 100.0


def per_image_psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of each image pair, ``10·log10(1 / MSE)`` with data_range 1, as float64 [N]
    (an exact copy scores :data:`PSNR_CAP_DB` rather than ``inf``).

    Args:
        x, y: [N, C, H, W] images in [0, 1].

    >>> x = torch.full((2, 3, 8, 8), 0.5)
    >>> values = per_image_psnr(x, x + torch.tensor([0.1, 0.0]).view(2, 1, 1, 1))
    >>> [round(value, 3) for value in values.tolist()]  # MSE 0.01 -> 20 dB; an exact copy
    [20.0, 100.0]
    """
    x, y = _checked_images(x, y)
    mse = (x.double() - y.double()).square().flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse.clamp_min(10.0 ** (-PSNR_CAP_DB / 10.0)))


def beats_mean_image(gain: Interval) -> bool:
    """Whether a reconstruction attack recovered more than the mean training image: the
    interval of its mean per-image PSNR gain over that baseline (dB, over the test images)
    lies wholly above 0. A gain without an interval (one test image) does not count."""
    return bool(gain.low > 0)


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


@dataclass(frozen=True)
class ImageScores:
    """Reconstruction scores over a test split: mean per-image PSNR (dB), mean SSIM and mean
    squared error (on [0, 1] images, data_range = 1)."""

    psnr: float
    ssim: float
    mse: float


def image_scores(outputs: torch.Tensor, targets: torch.Tensor,
                 batch_size: int = 256) -> ImageScores:
    """PSNR, SSIM and MSE of ``outputs`` against ``targets``, computed batch by batch.

    Each batch is scored with :func:`psnr` and :func:`ssim` (batch means of per-image values) and
    the batch means are averaged weighting each batch by its size, so PSNR and SSIM are means of
    per-image values over the whole split, whatever ``batch_size`` is (PSNR is *not* computed
    from the split's pooled MSE). ``inf`` PSNR if any pair is identical.

    Args:
        outputs, targets: float [N, 3, S, S] images in [0, 1], N ≥ 1, S ≥ 6.
        batch_size: images per batch (memory only; the result does not depend on it).
    """
    if outputs.shape != targets.shape or outputs.dim() != 4:
        raise ValueError(f"expected two [N, C, H, W] images of one shape, got "
                         f"{tuple(outputs.shape)}, {tuple(targets.shape)}")
    starts = range(0, int(outputs.shape[0]), batch_size)
    return _batched_scores((outputs[i:i + batch_size], targets[i:i + batch_size])
                           for i in starts)


def mean_image_baseline(train_images: torch.Tensor, test_images: torch.Tensor,
                        batch_size: int = 256) -> ImageScores:
    """Scores of the trivial reconstruction attack: the mean training image for every test image.

    A learned decoder whose PSNR does not beat this baseline did not learn.

    Args:
        train_images: [N, 3, S, S], uint8 in 0..255 (divided by 255) or float in [0, 1].
        test_images: [M, 3, S, S], likewise.
        batch_size: images converted to float at a time; the mean is accumulated in float64
            chunk by chunk, so no float copy of the whole split is made.

    >>> train = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 8, 8)
    >>> round(mean_image_baseline(train, train).mse, 4)  # predicts 0.5 for both: error 0.5²
    0.25
    """
    if train_images.dim() != 4 or train_images.shape[1:] != test_images.shape[1:]:
        raise ValueError(f"expected [N, C, H, W] train and test images of one image shape, got "
                         f"{tuple(train_images.shape)}, {tuple(test_images.shape)}")
    if train_images.shape[0] == 0:
        raise ValueError("the mean image of an empty training split is undefined")
    mean = _mean_image(train_images, batch_size).float()

    def pairs() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for start in range(0, int(test_images.shape[0]), batch_size):
            target = _unit_float(test_images[start:start + batch_size], torch.float32)
            yield mean.expand_as(target), target

    return _batched_scores(pairs())


def mean_image(images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The mean image [C, H, W] (float32 in [0, 1]) of images [N, C, H, W] (uint8 0..255 or
    float in [0, 1]): the mean-image baseline's prediction, accumulated in float64 by chunks."""
    if images.dim() != 4 or images.shape[0] == 0:
        raise ValueError(f"expected a non-empty [N, C, H, W] batch, got {tuple(images.shape)}")
    return _mean_image(images, batch_size).float()


def _mean_image(images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Float64 mean [C, H, W] in [0, 1] of images [N, C, H, W], accumulated chunk by chunk."""
    total = torch.zeros(images.shape[1:], dtype=torch.float64, device=images.device)
    for start in range(0, int(images.shape[0]), batch_size):
        total += _unit_float(images[start:start + batch_size], torch.float64).sum(dim=0)
    return total / images.shape[0]


def _unit_float(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """uint8 images (0..255) divided by 255, or float images (in [0, 1]), as ``dtype``."""
    if images.dtype == torch.uint8:
        return images.to(dtype) / 255.0
    if not images.is_floating_point():
        raise ValueError(f"images must be uint8 (0..255) or float in [0, 1], got {images.dtype}")
    images = images.detach().to(dtype)
    if images.numel() and not (float(images.min()) >= -RANGE_TOLERANCE
                               and float(images.max()) <= 1 + RANGE_TOLERANCE):
        raise ValueError("float images must lie in [0, 1] (pass 0-255 images as uint8)")
    return images


def _batched_scores(batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> ImageScores:
    """Batch-size-weighted means of per-batch PSNR, SSIM and MSE over (output, target) batches."""
    sums, count = [0.0, 0.0, 0.0], 0
    for output, target in batches:
        size = int(output.shape[0])
        x, y = _checked_images(output, target)
        batch = (psnr(x, y), ssim(x, y), float(torch.mean((x.double() - y.double()) ** 2)))
        sums = [total + size * value for total, value in zip(sums, batch, strict=True)]
        count += size
    if count == 0:
        raise ValueError("no images to score")
    return ImageScores(*(total / count for total in sums))


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
    "PSNR_CAP_DB",
    "RANGE_TOLERANCE",
    "ImageScores",
    "advantage",
    "beats_chance",
    "beats_mean_image",
    "binomial_upper_tail",
    "contingency_table",
    "cramers_v",
    "image_scores",
    "mean_image",
    "mean_image_baseline",
    "ms_ssim",
    "normalised_delta",
    "per_image_psnr",
    "privacy_utility_delta",
    "psnr",
    "roc_auc",
    "ssim",
    "top1_identification_rate",
]
