"""The reconstruction attack builds its decoder from the layout of the client's z."""

import math

import pytest
import torch
from torch import nn

from noisyarl.attacks import (
    AttackSettings,
    ReconstructionResult,
    ZView,
    run_reconstruction_attack,
)
from noisyarl.data.base import ImageSplit
from noisyarl.runtime import StepContext


def _splits(size: int = 24, side: int = 16) -> dict[str, ImageSplit]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (size, 3, side, side), dtype=torch.uint8, generator=generator)
    split = ImageSplit(images=images, labels={})
    return {"train": split, "valid": split, "test": split}


def _attack(client: nn.Module):
    view = ZView(client, StepContext(torch.device("cpu")), features=client)
    return run_reconstruction_attack(view, _splits(), AttackSettings(max_epochs=1, batch_size=8),
                                     image_size=16)


def test_a_client_that_sends_a_vector_is_attacked():
    torch.manual_seed(0)
    result = _attack(nn.Sequential(nn.Flatten(1), nn.Linear(3 * 16 * 16, 20)))
    assert math.isfinite(result.psnr) and math.isfinite(result.mse)
    assert result.reconstructions.shape[1:] == (3, 16, 16)


def test_a_client_that_sends_a_feature_map_is_attacked():
    torch.manual_seed(0)
    result = _attack(nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1))
    assert math.isfinite(result.psnr)
    assert result.reconstructions.shape[1:] == (3, 16, 16)


def test_a_z_of_another_layout_is_rejected():
    with pytest.raises(ValueError, match=r"\[B, C, H, W\] or \[B, D\]"):
        _attack(nn.Flatten(2))  # z [B, 3, 256]


def test_the_result_round_trips_to_json_without_the_decoder_and_examples():
    torch.manual_seed(0)
    result = _attack(nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1))
    values = result.to_dict()
    assert "decoder" not in values and "originals" not in values
    again = ReconstructionResult.from_dict(values)
    assert (again.psnr, again.baseline, again.curve) == (result.psnr, result.baseline,
                                                         result.curve)
