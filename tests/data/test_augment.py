"""Augmentation ranges, flips of coordinate labels, and batch iteration."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from noisyarl.data.augment import (
    adjust_contrast,
    augment_batch,
    draw_augmentation,
    flip_coordinates,
    iterate_batches,
)
from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.celeba import landmark_label_info

LANDMARKS = landmark_label_info()
BINARY = LabelInfo(kind="binary", num_classes=2)


def toy_split(count: int = 10, size: int = 6) -> ImageSplit:
    generator = torch.Generator().manual_seed(0)
    return ImageSplit(
        images=torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8,
                             generator=generator),
        labels={"smile": torch.arange(count) % 2,
                "landmarks": torch.rand(count, 10, generator=generator)},
        label_info={"smile": BINARY, "landmarks": LANDMARKS},
    )


def test_brightness_factor_stays_in_range_on_constant_images():
    images = torch.full((4000, 3, 2, 2), 0.5)
    jittered, _ = augment_batch(images, {}, {}, torch.Generator().manual_seed(1))
    ratio = jittered / images  # contrast leaves a constant gray image unchanged
    assert torch.allclose(ratio, ratio[:, :1, :1, :1].expand_as(ratio), atol=1e-5)
    factors = ratio[:, 0, 0, 0]
    assert factors.min() >= 0.9 - 1e-5 and factors.max() <= 1.1 + 1e-5
    assert factors.min() < 0.91 and factors.max() > 1.09  # the whole range is used


def test_contrast_factor_stays_in_range_on_two_level_images():
    images = torch.full((4000, 3, 2, 2), 0.25)
    images[..., 1] = 0.75
    jittered, _ = augment_batch(images, {}, {}, torch.Generator().manual_seed(2))
    # |right - left| / 0.5 = brightness x contrast factor (abs: a flip swaps the two columns)
    spread = (jittered[..., 1] - jittered[..., 0])[:, 0, 0].abs() / 0.5
    assert spread.min() >= 0.81 - 1e-5 and spread.max() <= 1.21 + 1e-5
    assert spread.min() < 0.83 and spread.max() > 1.19


def test_contrast_blends_towards_the_grayscale_mean_like_torchvision():
    from torchvision.transforms.functional import adjust_contrast as torchvision_contrast

    images = torch.rand(3, 3, 5, 5, generator=torch.Generator().manual_seed(3))
    factors = torch.tensor([0.9, 1.0, 1.1])
    ours = adjust_contrast(images, factors)
    for k in range(3):
        assert torch.allclose(ours[k], torchvision_contrast(images[k], float(factors[k])),
                              atol=1e-6)


def test_draws_are_in_range_and_reproducible():
    first = draw_augmentation(1000, torch.Generator().manual_seed(5))
    again = draw_augmentation(1000, torch.Generator().manual_seed(5))
    assert torch.equal(first.brightness, again.brightness) and torch.equal(first.flip, again.flip)
    for factors in (first.brightness, first.contrast):
        assert factors.min() >= 0.9 and factors.max() <= 1.1
    assert 0.4 < first.flip.float().mean() < 0.6


def test_evaluation_batches_are_the_stored_pixels():
    split = toy_split(count=10)
    batches = list(iterate_batches(split, 4, shuffle=False, augment=False))
    assert [len(images) for images, _ in batches] == [4, 4, 2]
    images = torch.cat([images for images, _ in batches])
    assert images.dtype == torch.float32
    assert torch.equal(images, split.images.float() / 255)
    assert torch.equal(torch.cat([labels["landmarks"] for _, labels in batches]),
                       split.labels["landmarks"])


def test_every_level_converts_to_the_correctly_rounded_quotient():
    levels = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(2, 3, 16, 16)
    split = ImageSplit(images=levels.contiguous(), labels={}, label_info={})
    (images, _), = iterate_batches(split, 2, shuffle=False, augment=False)
    expected = torch.tensor([k / 255 for k in range(256)], dtype=torch.float32)
    assert torch.equal(images[0, 0].reshape(-1), expected)


def test_shuffle_drop_last_and_channels_last():
    split = toy_split(count=10)
    batches = list(iterate_batches(split, 4, shuffle=True, augment=False, drop_last=True,
                                   generator=torch.Generator().manual_seed(0),
                                   channels_last=True))
    assert len(batches) == 2
    images = torch.cat([images for images, _ in batches])
    smiles = torch.cat([labels["smile"] for _, labels in batches])
    order = torch.randperm(10, generator=torch.Generator().manual_seed(0))[:8]
    assert torch.equal(images, split.images[order].float() / 255)
    assert torch.equal(smiles, split.labels["smile"][order])
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)


def test_training_batches_are_augmented_reproducibly():
    split = toy_split(count=8)

    def epoch(seed: int) -> list:
        return list(iterate_batches(split, 8, shuffle=False, augment=True,
                                    generator=torch.Generator().manual_seed(seed)))

    (images, labels), = epoch(7)
    (same_images, same_labels), = epoch(7)
    assert torch.equal(images, same_images)
    assert torch.equal(labels["landmarks"], same_labels["landmarks"])
    assert not torch.equal(images, split.images.float() / 255)
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(labels["smile"], split.labels["smile"])


def test_flip_moves_pixels_and_landmarks_together():
    # One bright pixel per image, at the left-eye landmark. After augmentation the bright pixel
    # must sit where the relabelled landmarks say: the left eye, or the right eye if flipped.
    size = 8
    images = torch.zeros(64, 3, size, size)
    images[:, :, 2, 1] = 1.0
    # left eye at pixel (x=1, y=2); right eye at (x=5, y=2): unit = (pixel + 0.5) / size
    landmarks = torch.tensor([1.5, 2.5, 5.5, 2.5, 3.5, 4.5, 2.5, 6.5, 4.5, 6.5]) / size
    labels = {"landmarks": landmarks.expand(64, 10).clone()}
    new_images, new_labels = augment_batch(images, labels, {"landmarks": LANDMARKS},
                                           torch.Generator().manual_seed(9))
    bright_x = new_images[:, 0, 2, :].argmax(dim=1).float()
    flipped = bright_x == size - 2
    assert 0 < int(flipped.sum()) < 64 and bool(((bright_x == 1) | flipped).all())
    # The bright pixel was the left eye; after a flip it is the right eye (pixel x = 6).
    right_eye_x = new_labels["landmarks"][:, 2] * size - 0.5
    left_eye_x = new_labels["landmarks"][:, 0] * size - 0.5
    assert torch.allclose(right_eye_x[flipped], bright_x[flipped])
    assert torch.allclose(left_eye_x[~flipped], bright_x[~flipped])
    assert torch.allclose(left_eye_x[flipped], torch.full_like(left_eye_x[flipped], 2.0))


unit_coordinates = arrays("float32", st.tuples(st.integers(1, 6), st.just(10)),
                          elements=st.floats(0, 1, width=32))


@settings(max_examples=60, deadline=None)
@given(unit_coordinates)
def test_flip_of_landmark_labels(values):
    values = torch.from_numpy(values)
    flipped = flip_coordinates(values, LANDMARKS)
    assert torch.allclose(flip_coordinates(flipped, LANDMARKS), values, atol=1e-6)
    for new, old in ((0, 2), (2, 0), (4, 4), (6, 8), (8, 6)):  # x: mirrored and swapped
        assert torch.allclose(flipped[:, new], 1 - values[:, old], atol=1e-6)
    for new, old in ((1, 3), (3, 1), (5, 5), (7, 9), (9, 7)):  # y: swapped only
        assert torch.equal(flipped[:, new], values[:, old])


@settings(max_examples=30, deadline=None)
@given(unit_coordinates, st.integers(0, 2**31 - 1))
def test_augment_either_keeps_or_flips_each_landmark_row(values, seed):
    values = torch.from_numpy(values)
    images = torch.rand(len(values), 3, 4, 4)
    _, labels = augment_batch(images, {"landmarks": values}, {"landmarks": LANDMARKS},
                              torch.Generator().manual_seed(seed))
    flips = draw_augmentation(len(values), torch.Generator().manual_seed(seed)).flip
    expected = torch.where(flips[:, None], flip_coordinates(values, LANDMARKS), values)
    assert torch.equal(labels["landmarks"], expected)
