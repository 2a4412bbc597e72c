"""Black-box input optimisation: the attacker has query access to the client but not its
weights, so it first learns a surrogate of h and then inverts through it (the shadow-model
inversion of He, Zhang & Lee, ACSAC 2019, with the shadow fitted to the client's answers).

1. The attacker owns the first ``fraction`` of the training split (its own images, disjoint
   from the test images it attacks) and queries the client on them: every epoch it sees a
   fresh query of each of its images (z has fresh noise per query). A surrogate client s is
   trained with MSE(s(x), z) until its MSE on the validation split's z stops improving
   (:func:`~noisyarl.attacks.base.fit_until_plateau`, with the run's attack settings: lr,
   batch size, epoch ceiling, patience). Regressing on noisy z, s estimates E[z | x] = h(x).
2. It inverts the test z through s exactly as the white-box attack inverts through h
   (:func:`~noisyarl.attacks.white_box.run_inversion`: MAP with the Gaussian likelihood of
   σ, which is public, and a TV prior whose weight is chosen on validation), starting from
   the mean of its own images.

The surrogate (:class:`SurrogateClient`) does not assume the client's architecture: a small
convolutional net shaped to z by its layout alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from noisyarl.attacks.base import (
    Attack,
    AttackSettings,
    LearningCurve,
    fit_until_plateau,
)
from noisyarl.attacks.common import freeze
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.attacks.white_box import (
    InversionOptions,
    InversionResult,
    SurrogateFigures,
    first_rows,
    run_inversion,
)
from noisyarl.data.base import ImageSplit
from noisyarl.utils.seeding import epoch_generator

#: Channels of the surrogate's first convolution; each downsampling doubles them up to
#: :data:`MAX_WIDTH`.
FIRST_WIDTH = 64
MAX_WIDTH = 256
#: Grid side the surrogate pools to before its linear layer when z is a vector.
VECTOR_GRID = 4


@dataclass(frozen=True)
class BlackBoxOptions(InversionOptions):
    """The inversion's settings (:class:`~noisyarl.attacks.white_box.InversionOptions`) and
    ``fraction``: the share of the training split the attacker owns, its first rows (0.5)."""

    fraction: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 < self.fraction <= 1:
            raise ValueError("fraction: must be in (0, 1]")


def _conv_block(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class SurrogateClient(nn.Module):
    """images [B, 3, S, S] -> an estimate of h: [B, C, h, w] for a feature-map z of shape
    (C, h, w), [B, D] for a vector z of shape (D,).

    A 3x3 convolution to 64 channels, then stages of a stride-2 and a stride-1 3x3
    convolution (channels doubled up to 256) until the side is at most h (4 for a vector z),
    each convolution followed by batch norm and ReLU; then adaptive average pooling to
    (h, w) and a 1x1 convolution to C channels (a vector z: pooling to 4 x 4, flattening and
    a linear layer to D).
    """

    def __init__(self, image_size: int, z_shape: tuple[int, ...]) -> None:
        super().__init__()
        if len(z_shape) not in (1, 3):
            raise ValueError(f"the surrogate needs z of shape (C, h, w) or (D,), got {z_shape}")
        grid = tuple(z_shape[1:]) if len(z_shape) == 3 else (VECTOR_GRID, VECTOR_GRID)
        layers: list[nn.Module] = [_conv_block(3, FIRST_WIDTH, 1)]
        side, width = image_size, FIRST_WIDTH
        while side > grid[0]:
            wider = min(width * 2, MAX_WIDTH)
            layers += [_conv_block(width, wider, 2), _conv_block(wider, wider, 1)]
            side, width = (side + 1) // 2, wider
        layers.append(nn.AdaptiveAvgPool2d(grid))
        self.body = nn.Sequential(*layers)
        if len(z_shape) == 3:
            self.head: nn.Module = nn.Conv2d(width, z_shape[0], 1)
        else:
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * grid[0] * grid[1],
                                                              z_shape[0]))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))


@torch.no_grad()
def surrogate_mse(view: ZView, surrogate: nn.Module, split: ImageSplit,
                  batch_size: int) -> float:
    """Mean squared error per element of ``surrogate``'s output against one noisy pass of
    ``split``'s z."""
    surrogate.eval()
    total, count = 0.0, 0
    for images, z, _ in view.batches(split, batch_size, shard=False):
        with view.context.autocast():
            output = surrogate(images).float()
        total += float(F.mse_loss(output, z, reduction="sum"))
        count += z.numel()
    return total / max(count, 1)


def train_surrogate(view: ZView, owned: ImageSplit, valid: ImageSplit, image_size: int,
                    settings: AttackSettings) -> tuple[SurrogateClient, LearningCurve]:
    """A fresh :class:`SurrogateClient` trained on the attacker's queries of ``owned`` (a
    fresh query of each image per epoch) until its MSE on ``valid``'s z stops improving;
    it ends in its best-validation state, frozen (eval mode, no gradients)."""
    context = view.context
    torch.manual_seed(settings.seed)
    surrogate = SurrogateClient(image_size, view.z_shape(owned)).to(context.device)
    optimizer = torch.optim.Adam(surrogate.parameters(), lr=settings.lr)

    def train_epoch(epoch: int) -> float:
        surrogate.train()
        generator = epoch_generator(settings.seed, epoch, "reconstruction")
        total, count = 0.0, 0
        for images, z, _ in view.batches(owned, settings.batch_size, shuffle=True,
                                         generator=generator, shard=False):
            with context.autocast():
                loss = F.mse_loss(surrogate(images).float(), z)
            context.step(loss, optimizer)
            total, count = total + float(loss.detach()) * z.shape[0], count + z.shape[0]
        return total / max(count, 1)

    def validate(epoch: int) -> dict[str, float]:
        mse = surrogate_mse(view, surrogate, valid, settings.eval_batch_size)
        return {"valid": mse, "valid_loss": mse}

    curve = fit_until_plateau(surrogate, optimizer, train_epoch, validate, settings,
                              steps_per_epoch=max(len(owned) // settings.batch_size, 1),
                              higher_is_better=False, desc="black-box surrogate")
    return freeze(surrogate), curve


class BlackBoxAttack(Attack):
    """Input optimisation through a surrogate of h learned from queries on the attacker's
    share of the training split (:class:`BlackBoxOptions`)."""

    name = "black_box"
    result_type = InversionResult
    needs_task = False
    options_type = BlackBoxOptions

    def run(self, target: AttackTarget, settings: AttackSettings) -> InversionResult:
        options: BlackBoxOptions = self.options
        train = target.splits["train"]
        owned = first_rows(train, max(2, round(options.fraction * len(train))))
        surrogate, curve = train_surrogate(target.view, owned, target.splits["valid"],
                                           target.image_size, settings)
        figures = SurrogateFigures(attacker_images=len(owned),
                                   valid_mse=curve.best()["valid"])
        return run_inversion(target.view, surrogate, target.splits, settings, options,
                             attack=self.name, start_from=owned.images, curve=curve,
                             surrogate=figures)


__all__ = ["BlackBoxAttack", "BlackBoxOptions", "SurrogateClient", "surrogate_mse",
           "train_surrogate"]
