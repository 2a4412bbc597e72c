"""White-box input optimisation: recover each image x from its z by gradient descent through
the client, whose weights and σ the attacker knows (Kerckhoffs's principle); the regularised
maximum-likelihood attack of He, Zhang & Lee, "Model inversion attacks against collaborative
inference", ACSAC 2019, with the Gaussian noise's likelihood as its data term.

For an observed z the attacker takes the MAP estimate of x under the Gaussian likelihood of the
noise and a total-variation prior, per image:

    L(x) = ‖h(x) − z‖² / (2 s²) + λ · TV(x)        (s = 0: ‖h(x) − z‖² + λ · TV(x))

h: the client without its noise (:attr:`~noisyarl.attacks.view.ZView.features`), z: as the
server receives it (noise std s = σ, or σ/√k for the mean of k queries), TV: the anisotropic
total variation Σ|Δx| over rows, columns and channels (:func:`total_variation`). Both terms
are sums over elements. x starts from the mean training image and is optimised by Adam on its
pixels, with a cosine-decayed learning rate, clamped to [0, 1] after every step
(:func:`invert`); the images of a batch are optimised together but independently (the client
is in eval mode, so no image's loss depends on another's).

λ is chosen from :attr:`InversionOptions.tv_weights` by the PSNR on the first
``valid_images`` validation images, never on test. The headline is PSNR / SSIM (data_range 1)
on the first ``test_images`` test images (64 by default, for cost), averaged over the run's
test noise draws, beside the mean-image baseline on the same test images.

:func:`run_inversion` is shared with the black-box attack (:mod:`noisyarl.attacks.black_box`),
which inverts through a surrogate of h trained from queries instead of h itself.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from noisyarl.attacks.base import (
    Attack,
    AttackSettings,
    ImageAttackResult,
    LearningCurve,
    not_in_json,
)
from noisyarl.attacks.common import psnr_gain
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import ImageSplit
from noisyarl.evaluation.metrics import (
    ImageScores,
    beats_mean_image,
    image_scores,
    mean_image,
    mean_image_baseline,
    per_image_psnr,
)
from noisyarl.evaluation.plots import save_image_grid
from noisyarl.utils.io import atomic_torch_save

#: Test images drawn in the figure (originals over the start and the reconstructions).
FIGURE_IMAGES = 8


@dataclass(frozen=True)
class InversionOptions:
    """Settings of input optimisation (config: ``attacks.options.white_box``).

    steps: Adam steps per batch of images (200). lr: Adam's initial learning rate on pixel
    values in [0, 1] (0.05), cosine-decayed to 0 over the steps. tv_weights: the TV weights λ
    tried on the validation images (0, 0.1, 0.3, 1, 3, 10; both loss terms are sums over
    elements; on 16 px faces seen through the identity λ = 1..3 was best for σ = 0.2..2).
    valid_images: the first validation images, inverted once per λ (32). test_images: the
    first test images, inverted for the headline (64). batch_size: images optimised together
    (64). queries: the attacker averages this many fresh-noise queries of each image before
    inverting (1; noise std σ/√k).
    """

    steps: int = 200
    lr: float = 0.05
    tv_weights: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.3, 1.0, 3.0, 10.0])
    valid_images: int = 32
    test_images: int = 64
    batch_size: int = 64
    queries: int = 1

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 1, "steps", "must be >= 1"),
            (math.isfinite(self.lr) and self.lr > 0, "lr", "must be > 0"),
            (bool(self.tv_weights) and all(weight >= 0 for weight in self.tv_weights),
             "tv_weights", "must be a non-empty list of weights >= 0"),
            (self.valid_images >= 1, "valid_images", "must be >= 1"),
            (self.test_images >= 1, "test_images", "must be >= 1"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (self.queries >= 1, "queries", "must be >= 1"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ValueError(f"{key}: {message}")


@dataclass(frozen=True)
class SurrogateFigures:
    """The black-box attacker's surrogate of h: trained on ``attacker_images`` images of its
    own; ``valid_mse``: its MSE to the validation split's (noisy) z at its best epoch (about
    s² plus its error on h)."""

    attacker_images: int
    valid_mse: float


@dataclass
class InversionResult(ImageAttackResult):
    """Input optimisation's figures on [0, 1] test images (PSNR in dB, data_range 1).

    psnr / ssim / mse: means over the ``test_images`` inverted test images and the noise
    draws; psnr_sd: SD of PSNR over the draws. baseline: the mean training image's figures on
    the same test images; psnr_gain: the mean per-image PSNR gain over it with its interval over
    the test images; learned: that interval lies above 0. tv_weight: λ chosen on validation;
    tv_weights / valid_psnr: the grid and each λ's validation PSNR. noise_std: the noise std
    s the likelihood assumed (σ/√queries). surrogate: the black-box attack's surrogate (None
    for the white-box attack). originals / starts / reconstructions: the first test images
    of the first draw [n, 3, S, S], for the figure (not in :meth:`to_dict`).
    """

    tv_weight: float
    tv_weights: list[float]
    valid_psnr: list[float]
    test_images: int
    valid_images: int
    queries: int
    noise_std: float
    steps: int
    surrogate: SurrogateFigures | None = field(
        default=None, metadata={"from_dict": lambda values: SurrogateFigures(**values)})
    originals: torch.Tensor | None = not_in_json()
    starts: torch.Tensor | None = not_in_json()
    reconstructions: torch.Tensor | None = not_in_json()

    def cells(self) -> dict[str, Any]:
        cells = {"psnr": self.psnr, "ssim": self.ssim, "psnr_sd": self.psnr_sd,
                 "psnr_baseline": self.baseline.psnr, "ssim_baseline": self.baseline.ssim,
                 "learned": self.learned, "tv_weight": self.tv_weight,
                 "images": self.test_images, "queries": self.queries}
        if self.surrogate is not None:
            cells.update(surrogate_valid_mse=self.surrogate.valid_mse,
                         attacker_images=self.surrogate.attacker_images,
                         epochs=self.curve.epochs_run)
        return cells

    def save_figures(self, folder: Path) -> list[Path]:
        """``ATTACK.png`` (originals over the start and the reconstructions) and
        ``ATTACK_examples.pt`` (originals and reconstructions, for a comparison's grid)."""
        if self.originals is None or self.reconstructions is None or self.starts is None:
            return []
        rows = [("mean image (start)", self.starts), (self.attack, self.reconstructions)]
        return [save_image_grid(self.originals, rows, Path(folder) / f"{self.attack}.png"),
                atomic_torch_save({"originals": self.originals,
                                   "reconstructions": self.reconstructions},
                                  Path(folder) / f"{self.attack}_examples.pt")]


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Anisotropic total variation of each image [B]: the sum of |x[i+1, j] − x[i, j]| and
    |x[i, j+1] − x[i, j]| over channels and pixels of images [B, C, H, W]."""
    rows = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().sum(dim=(1, 2, 3))
    columns = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().sum(dim=(1, 2, 3))
    return rows + columns


def likelihood_weight(noise_std: float) -> float:
    """The weight 1 / (2 s²) of the squared error in the negative log-likelihood of
    N(h(x), s²); 1 for s = 0 (plain squared error)."""
    return 1.0 / (2.0 * noise_std**2) if noise_std > 0 else 1.0


def invert(forward: nn.Module, z: torch.Tensor, start: torch.Tensor, *, noise_std: float,
           tv_weight: float, steps: int, lr: float) -> torch.Tensor:
    """Images [B, 3, S, S] in [0, 1] that explain ``z`` [B, ...] through ``forward``: Adam on
    ``Σ_images ‖forward(x) − z‖² · likelihood_weight(noise_std) + tv_weight · TV(x)`` from
    ``start`` [B, 3, S, S], cosine-decayed learning rate, x clamped to [0, 1] after each step.

    ``forward`` (the client's h or a surrogate) must be in eval mode; its weights are not
    updated (only x is optimised).
    """
    x = start.detach().clone().clamp_(0, 1).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    weight = likelihood_weight(noise_std)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        error = (forward(x).float() - z).square().flatten(1).sum(dim=1)
        loss = (weight * error + tv_weight * total_variation(x)).sum()
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


@dataclass
class Inversions:
    """One noisy pass over a split: originals and reconstructions [N, 3, S, S] (CPU)."""

    originals: torch.Tensor
    reconstructions: torch.Tensor

    def scores(self) -> ImageScores:
        return image_scores(self.reconstructions, self.originals)

    def gains_over(self, mean: torch.Tensor) -> torch.Tensor:
        """Each image's PSNR gain (dB) over the mean image ``mean`` [3, S, S]: float64 [N]."""
        baseline = mean.to(self.originals).expand_as(self.originals)
        return (per_image_psnr(self.reconstructions, self.originals)
                - per_image_psnr(baseline, self.originals))


def invert_split(view: ZView, forward: nn.Module, split: ImageSplit, start: torch.Tensor, *,
                 tv_weight: float, options: InversionOptions) -> Inversions:
    """Every image of ``split`` inverted from one fresh draw of its z (``start``: [3, S, S])."""
    originals, reconstructions = [], []
    for images, z, _ in view.batches(split, options.batch_size, shard=False):
        with view.context.autocast():
            inverted = invert(forward, z, start.expand_as(images), noise_std=view.noise_std,
                              tv_weight=tv_weight, steps=options.steps, lr=options.lr)
        originals.append(images.float().cpu())
        reconstructions.append(inverted.float().cpu())
    return Inversions(torch.cat(originals), torch.cat(reconstructions))


def choose_tv_weight(view: ZView, forward: nn.Module, valid: ImageSplit, start: torch.Tensor,
                     options: InversionOptions, *, seed: int) -> tuple[float, list[float]]:
    """The λ of ``options.tv_weights`` with the highest PSNR on ``valid`` (the first among
    ties), and every λ's PSNR. Each λ sees the same noise draw (seeded by ``seed``)."""
    psnrs = []
    for weight in options.tv_weights:
        torch.manual_seed(seed)
        passed = invert_split(view, forward, valid, start, tv_weight=weight, options=options)
        psnrs.append(passed.scores().psnr)
    best = max(range(len(psnrs)), key=psnrs.__getitem__)
    return options.tv_weights[best], psnrs


def first_rows(split: ImageSplit, count: int) -> ImageSplit:
    """The first ``count`` rows of ``split`` (all of it when it is smaller)."""
    return split if len(split) <= count else split.subset(torch.arange(count))


def run_inversion(view: ZView, forward: nn.Module, splits: dict[str, ImageSplit],
                  settings: AttackSettings, options: InversionOptions, *, attack: str,
                  start_from: torch.Tensor | None = None, curve: LearningCurve | None = None,
                  surrogate: SurrogateFigures | None = None) -> InversionResult:
    """Invert ``view``'s z of the first test images through ``forward`` (images -> h-shaped
    output, eval mode), λ chosen on the first validation images.

    start_from: images [N, 3, S, S] whose mean image is the start (default: the training
    split's). The noise draws (``settings.noise_draws``, one for a deterministic view) start
    from ``settings.seed``; ``curve`` / ``surrogate``: a surrogate's training (black box).
    """
    queried = view.averaged(options.queries)
    train = splits["train"]
    start = mean_image(train.images if start_from is None else start_from)
    start = start.to(view.context.device)
    valid = first_rows(splits["valid"], options.valid_images)
    test = first_rows(splits["test"], options.test_images)
    tv_weight, valid_psnr = choose_tv_weight(queried, forward, valid, start, options,
                                             seed=settings.seed)
    torch.manual_seed(settings.seed + 1)
    draws = [invert_split(queried, forward, test, start, tv_weight=tv_weight, options=options)
             for _ in range(1 if queried.deterministic else settings.noise_draws)]
    scores = [draw.scores() for draw in draws]
    psnrs = [score.psnr for score in scores]
    baseline = mean_image_baseline(train.images, test.images, batch_size=settings.eval_batch_size)
    train_mean = mean_image(train.images)
    gain = psnr_gain([draw.gains_over(train_mean) for draw in draws])
    shown = min(FIGURE_IMAGES, len(test))
    return InversionResult(
        attack=attack, curve=curve or LearningCurve(), psnr=statistics.fmean(psnrs),
        ssim=statistics.fmean(score.ssim for score in scores),
        mse=statistics.fmean(score.mse for score in scores),
        psnr_sd=statistics.stdev(psnrs) if len(psnrs) > 1 else 0.0, baseline=baseline,
        learned=beats_mean_image(gain), psnr_gain=gain, tv_weight=tv_weight,
        tv_weights=list(options.tv_weights), valid_psnr=valid_psnr, test_images=len(test),
        valid_images=len(valid), queries=options.queries, noise_std=queried.noise_std,
        steps=options.steps, surrogate=surrogate, originals=draws[0].originals[:shown],
        starts=start.cpu().expand(shown, *start.shape).clone(),
        reconstructions=draws[0].reconstructions[:shown],
    )


class WhiteBoxAttack(Attack):
    """Input optimisation through the client's own noise-free features h (weights and σ
    known: ``ZView.features``). A client whose randomness the view does not know (a learned
    noise that is no noise module) is inverted through the client itself, its noise included
    (noise added independently of x leaves the gradient with respect to x unchanged; the
    likelihood then weighs the squared error by 1)."""

    name = "white_box"
    result_type = InversionResult
    needs_task = False
    trains = False
    options_type = InversionOptions

    def run(self, target: AttackTarget, settings: AttackSettings) -> InversionResult:
        view = target.view
        forward = view.features if view.features is not None else view.client
        return run_inversion(view, forward, target.splits, settings, self.options,
                             attack=self.name)


__all__ = ["InversionOptions", "InversionResult", "Inversions", "SurrogateFigures",
           "WhiteBoxAttack", "choose_tv_weight", "first_rows", "invert", "invert_split",
           "likelihood_weight", "run_inversion", "total_variation"]
