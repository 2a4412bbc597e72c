"""The distance-correlation figure: 1 when z is the image, at its chance level when z is
independent of the image, chunks of equal size, and averaging queries raises it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from noisyarl.attacks.base import AttackSettings
from noisyarl.attacks.distance_correlation import (
    DistanceCorrelationAttack,
    DistanceCorrelationOptions,
    used_rows,
)
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import ImageSplit
from noisyarl.data.registry import load_splits
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
SIZE = 16


class Constant(nn.Module):
    """Sends zeros [B, width] whatever the image: with noise, z is independent of x."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.new_zeros(images.shape[0], self.width)


class Brightness(nn.Module):
    """Sends each image's mean pixel value [B, 1]."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return images.mean(dim=(1, 2, 3)).unsqueeze(1)


@pytest.fixture(scope="module")
def splits(tiny_celeba_root):
    return load_splits("celeba", tiny_celeba_root, SIZE)


@pytest.fixture(scope="module")
def grey_splits():
    """512 uniformly grey 4 x 4 images of random levels: x varies along one dimension."""
    generator = torch.Generator().manual_seed(0)
    levels = torch.randint(0, 256, (512, 1, 1, 1), generator=generator, dtype=torch.uint8)
    split = ImageSplit(images=levels.expand(512, 3, 4, 4).contiguous(), labels={})
    return {"train": split, "valid": split, "test": split}


def run(splits, features: nn.Module, sigma: float, **options):
    view = ZView(nn.Identity(), CPU, features=features, noise_std=sigma)
    target = AttackTarget(view=view, splits=splits, task=None, image_size=SIZE)
    attack = DistanceCorrelationAttack(DistanceCorrelationOptions(**options))
    return attack.run(target, AttackSettings(noise_draws=3, seed=0))


def test_dcor_is_one_when_z_is_the_image(splits):
    result = run(splits, nn.Identity(), 0.0, chunk_size=16)
    assert result.dcor == pytest.approx(1.0, abs=1e-5) and result.dcor_sd < 1e-5
    assert result.noise_draws == 1  # a deterministic client: one pass
    assert result.reference < 0.9


def test_dcor_of_z_independent_of_low_dimensional_images_is_near_zero(grey_splits):
    independent = run(grey_splits, Constant(1), 1.0, chunk_size=256)
    assert independent.chunks == 2 and independent.dcor < 0.15
    assert abs(independent.dcor - independent.reference) < 0.05
    dependent = run(grey_splits, Brightness(), 0.01, chunk_size=256)
    assert dependent.dcor > 0.9 and dependent.reference < 0.15


def test_independent_z_of_images_stands_at_its_chance_level_not_at_zero(splits):
    """The V-statistic's upward bias is large for high-dimensional samples: the pairing-broken
    reference, not 0, is the level that an independent z reaches."""
    independent = run(splits, Constant(8), 1.0, chunk_size=16)
    assert independent.dcor > 0.3
    spread = independent.dcor_sd + independent.reference_sd
    assert abs(independent.dcor - independent.reference) < 2 * spread + 0.02
    # The bias-corrected figure needs no reference: it is near 0 for the independent z and
    # 1 for z = x.
    assert abs(independent.corrected) < 0.1
    assert run(splits, nn.Identity(), 0.0, chunk_size=16).corrected == pytest.approx(1.0)


def test_chunks_have_one_size_and_a_small_split_is_one_chunk():
    split = ImageSplit(images=torch.zeros(100, 3, 4, 4, dtype=torch.uint8), labels={})
    assert len(used_rows(split, DistanceCorrelationOptions(chunk_size=32))) == 96
    assert len(used_rows(split, DistanceCorrelationOptions(chunk_size=256))) == 100
    assert len(used_rows(split, DistanceCorrelationOptions(chunk_size=32,
                                                           max_images=40))) == 32


def test_averaging_queries_raises_the_dependence(splits):
    single = run(splits, nn.Identity(), 2.0, chunk_size=16)
    averaged = run(splits, nn.Identity(), 2.0, chunk_size=16, queries=16)
    assert averaged.noise_std == pytest.approx(0.5) and averaged.queries == 16
    assert averaged.dcor > single.dcor
    assert averaged.chunks == single.chunks == averaged.images // 16


def test_options_are_checked():
    with pytest.raises(ValueError, match="chunk_size"):
        DistanceCorrelationOptions(chunk_size=1)
    with pytest.raises(ValueError, match="queries"):
        DistanceCorrelationOptions(queries=0)
