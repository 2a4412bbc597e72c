"""Distance correlation between images and z: a model-free leakage figure, nothing trained.

dCor (:func:`noisyarl.evaluation.dcor.distance_correlation`, the biased V-statistic NoPeek
uses) is computed between the test images x [n, 3, S, S] and their z on chunks of
``chunk_size`` test images in split order (n² distances per chunk). The V-statistic is biased
upwards by an amount that depends on n and on the dimensions: in high dimensions it is far
from 0 for independent samples (0.96 for n = 256 pairs of independent 768-dimensional
Gaussian vectors, 0.997 for 12288 dimensions), so every chunk has the same n (a final
partial chunk is left out unless it is the only one) and the figure is read against its
reference below, not against 0. Beside it stands the bias-corrected squared dCor R*
(:func:`~noisyarl.evaluation.dcor.bias_corrected_distance_correlation`, Székely & Rizzo 2014),
≈ 0 under independence at any dimension: the figure to read. Each chunk's figure is averaged
over the run's test noise draws (one for a client without noise); the headline is the mean over
chunks, with their SD.

Beside it stands its chance level, measured the same way: dCor between x and the same z with
the pairing broken (z of each chunk randomly permuted), which keeps both samples' marginal
distributions and removes every dependence between them.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from noisyarl.attacks.base import Attack, AttackResult, AttackSettings, LearningCurve
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import ImageSplit
from noisyarl.evaluation.dcor import bias_corrected_distance_correlation, distance_correlation


@dataclass(frozen=True)
class DistanceCorrelationOptions:
    """Settings of the dCor figure (config: ``attacks.options.distance_correlation``).

    chunk_size: test images per dCor sample (256). max_images: use at most this many test
    images, the first (None: all). queries: the attacker averages this many fresh-noise
    queries of each image first (1; noise std σ/√k).
    """

    chunk_size: int = 256
    max_images: int | None = None
    queries: int = 1

    def __post_init__(self) -> None:
        if self.chunk_size < 4:
            raise ValueError("chunk_size: must be >= 4")
        if self.max_images is not None and self.max_images < 4:
            raise ValueError("max_images: must be >= 4 or null")
        if self.queries < 1:
            raise ValueError("queries: must be >= 1")


@dataclass
class DistanceCorrelationResult(AttackResult):
    """dCor(x, z) on the test split (in [0, 1]; 1: z is an orthogonal transform and scaling
    of x; chance: ``reference``).

    dcor / dcor_sd: mean and SD over ``chunks`` chunks of ``chunk_size`` test images, each
    averaged over ``noise_draws`` draws of z; reference / reference_sd: the same for x against
    z with the pairing broken (the table's ``dcor_excess`` is dcor − reference); images:
    test images used; queries: queries averaged per image (noise std ``noise_std``);
    corrected / corrected_sd / corrected_reference: the bias-corrected R* of the same chunks
    (≈ 0 for independence; the V-statistic ``dcor`` is not).
    """

    dcor: float
    dcor_sd: float
    reference: float
    reference_sd: float
    chunks: int
    chunk_size: int
    images: int
    noise_draws: int
    queries: int
    noise_std: float
    corrected: float = 0.0
    corrected_sd: float = 0.0
    corrected_reference: float = 0.0

    def cells(self) -> dict[str, Any]:
        return {"dcor": self.dcor, "dcor_sd": self.dcor_sd, "dcor_reference": self.reference,
                "dcor_reference_sd": self.reference_sd,
                "dcor_excess": self.dcor - self.reference,
                "dcor_corrected": self.corrected, "dcor_corrected_sd": self.corrected_sd,
                "dcor_corrected_reference": self.corrected_reference, "images": self.images,
                "queries": self.queries}


def used_rows(split: ImageSplit, options: DistanceCorrelationOptions) -> ImageSplit:
    """The first rows of ``split`` that fill whole chunks (all of a split, or of
    ``max_images``, smaller than one chunk)."""
    available = len(split) if options.max_images is None else min(len(split),
                                                                   options.max_images)
    count = available if available < options.chunk_size else (
        available // options.chunk_size * options.chunk_size)
    return split if count == len(split) else split.subset(torch.arange(count))


@torch.no_grad()
def chunk_figures(view: ZView, split: ImageSplit, chunk_size: int,
                  generator: torch.Generator) -> torch.Tensor:
    """One noisy pass: [chunks, 4] of (dCor(x, z), dCor(x, permuted z), R*(x, z),
    R*(x, permuted z)) per chunk (R*: bias-corrected, needs chunks of ≥ 4 images)."""
    rows = []
    for images, z, _ in view.batches(split, chunk_size, shard=False):
        order = torch.randperm(z.shape[0], generator=generator).to(z.device)
        shuffled = z[order]
        rows.append(torch.tensor([
            float(distance_correlation(images, z)), float(distance_correlation(images, shuffled)),
            float(bias_corrected_distance_correlation(images, z)),
            float(bias_corrected_distance_correlation(images, shuffled))]))
    return torch.stack(rows)


def run_distance_correlation(view: ZView, test: ImageSplit, settings: AttackSettings,
                             options: DistanceCorrelationOptions) -> DistanceCorrelationResult:
    """dCor between ``test``'s images and their z as seen through ``view`` (see the module)."""
    queried = view.averaged(options.queries)
    used = used_rows(test, options)
    chunk_size = min(options.chunk_size, len(used))
    draws = 1 if queried.deterministic else settings.noise_draws
    torch.manual_seed(settings.seed)
    generator = torch.Generator().manual_seed(settings.seed)
    figures = torch.stack([chunk_figures(queried, used, chunk_size, generator)
                           for _ in range(draws)]).mean(dim=0).double()
    dcor, reference = figures[:, 0].tolist(), figures[:, 1].tolist()
    corrected = figures[:, 2].tolist()
    return DistanceCorrelationResult(
        attack="distance_correlation", curve=LearningCurve(), dcor=statistics.fmean(dcor),
        dcor_sd=_sd(dcor), reference=statistics.fmean(reference), reference_sd=_sd(reference),
        chunks=len(dcor), chunk_size=chunk_size, images=len(used), noise_draws=draws,
        queries=options.queries, noise_std=queried.noise_std,
        corrected=statistics.fmean(corrected), corrected_sd=_sd(corrected),
        corrected_reference=statistics.fmean(figures[:, 3].tolist()))


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


class DistanceCorrelationAttack(Attack):
    """Model-free dependence between test images and their z, beside its chance level."""

    name = "distance_correlation"
    result_type = DistanceCorrelationResult
    needs_task = False
    trains = False
    options_type = DistanceCorrelationOptions

    def run(self, target: AttackTarget, settings: AttackSettings
            ) -> DistanceCorrelationResult:
        return run_distance_correlation(target.view, target.splits["test"], settings,
                                        self.options)


__all__ = ["DistanceCorrelationAttack", "DistanceCorrelationOptions",
           "DistanceCorrelationResult", "chunk_figures", "run_distance_correlation",
           "used_rows"]
