"""A small CNN learns the drawn attributes of generated faces, and not the undrawn ones.

One multi-head CNN (4 strided conv layers) is trained once for 300 steps of batch 64 (Adam,
cosine decay) on 64 x 64 centre crops of 3600 generated faces (the identity-disjoint CelebA
train split of 4500) and scored on the other 900. Measured on a quiet 2-core machine (data
seeds 11-15): Male 0.94-0.97, Smiling 0.82-0.88, Mouth_Slightly_Open 0.95-0.97, race (7 groups)
0.69-0.71, Attractive (not drawn) within 0.025 of its majority rate. The thresholds below leave
a margin under those figures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisyarl.synthetic.faces import FAIRFACE_RACES, SynthConfig, generate_faces

BINARY_HEADS = ("Male", "Smiling", "Mouth_Slightly_Open", "Attractive")
UNDRAWN = "Attractive"  # an independent coin at rate ~0.51: nothing in the image predicts it
NUM_RACES = len(FAIRFACE_RACES)
CROP = 64
STEPS = 300
BATCH = 64


def _conv_block(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    )


def _small_cnn(num_outputs: int) -> nn.Module:
    """64 x 64 input -> 4 x 4 x 128 features -> ``num_outputs`` logits."""
    return nn.Sequential(
        _conv_block(3, 32),
        _conv_block(32, 64),
        _conv_block(64, 96),
        _conv_block(96, 128),
        nn.Flatten(),
        nn.Linear(128 * 4 * 4, num_outputs),
    )


def _centre_crop(images: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] -> float [N, 3, CROP, CROP] in [0, 1] (rows centred)."""
    top = (images.shape[1] - CROP) // 2
    left = (images.shape[2] - CROP) // 2
    crop = images[:, top : top + CROP, left : left + CROP]
    return torch.from_numpy(crop).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module")
def scores() -> dict[str, tuple[float, float]]:
    """Test accuracy and majority-class rate of every head: name -> (accuracy, majority)."""
    torch.manual_seed(0)
    faces = generate_faces(SynthConfig(num_images=4500, image_size=CROP, seed=11))
    images = _centre_crop(faces.images)
    binary = torch.from_numpy(np.stack([faces.attribute(n) for n in BINARY_HEADS], 1)).float()
    race = torch.from_numpy(faces.race)
    train = torch.from_numpy(faces.partition == 0)
    test = ~train

    model = _small_cnn(len(BINARY_HEADS) + NUM_RACES)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=STEPS)
    train_images, train_binary, train_race = images[train], binary[train], race[train]
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(STEPS):
        batch = torch.randint(0, len(train_images), (BATCH,), generator=generator)
        logits = model(train_images[batch])
        loss = F.binary_cross_entropy_with_logits(
            logits[:, : len(BINARY_HEADS)], train_binary[batch]
        ) * len(BINARY_HEADS) + F.cross_entropy(logits[:, len(BINARY_HEADS) :], train_race[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()

    model.eval()
    with torch.no_grad():
        logits = model(images[test])
    result = {}
    for k, name in enumerate(BINARY_HEADS):
        truth = binary[test][:, k]
        accuracy = ((logits[:, k] > 0).float() == truth).float().mean().item()
        rate = truth.mean().item()
        result[name] = (accuracy, max(rate, 1 - rate))
    race_accuracy = (logits[:, len(BINARY_HEADS) :].argmax(1) == race[test]).float().mean()
    race_majority = np.bincount(faces.race[test.numpy()]).max() / int(test.sum())
    result["race"] = (race_accuracy.item(), float(race_majority))
    return result


@pytest.mark.parametrize(
    ("name", "threshold"),
    [("Male", 0.85), ("Smiling", 0.75), ("Mouth_Slightly_Open", 0.85), ("race", 0.55)],
)
def test_drawn_attribute_is_learned_well_above_chance(scores, name, threshold):
    accuracy, majority = scores[name]
    assert accuracy > threshold, f"{name}: accuracy {accuracy:.3f} (majority {majority:.3f})"
    assert accuracy > majority + 0.2


def test_undrawn_attribute_stays_at_chance(scores):
    accuracy, majority = scores[UNDRAWN]
    assert abs(accuracy - majority) <= 0.07, f"accuracy {accuracy:.3f}, majority {majority:.3f}"
