"""The CelebA loader returns what the generator drew: attributes, identities, crops, landmarks."""

from __future__ import annotations

import numpy as np
import PIL.Image
import pytest
import torch
import torchvision

from noisyarl.data.augment import augment_batch, color_jitter, draw_augmentation, flip_coordinates
from noisyarl.data.celeba import (
    CELEBA_ATTRIBUTES,
    LANDMARK_NAMES,
    CelebAFaces,
    centre_square_box,
    landmarks_to_unit,
    read_listing,
)
from noisyarl.data.registry import available_labels, load_splits
from noisyarl.synthetic.faces import CELEBA_ATTRIBUTES as SYNTH_ATTRIBUTES
from noisyarl.synthetic.faces import LANDMARK_NAMES as SYNTH_LANDMARK_NAMES

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}
WIDTH, HEIGHT = 40, 49  # the generated CelebA-format images (conftest.CELEBA_CONFIG)
LEFT, TOP, SIDE = 0, 4, 40  # their centre square


@pytest.fixture(scope="module")
def splits(celeba_root):
    return load_splits("celeba", celeba_root, SIDE)


def truth_rows(truth, split: str) -> np.ndarray:
    return np.flatnonzero(truth.partition == SPLIT_CODES[split])


def expected_unit_landmarks(truth, rows: np.ndarray) -> torch.Tensor:
    """Ground-truth pixel landmarks -> unit crop coordinates, computed independently."""
    px = torch.from_numpy(truth.landmarks[rows]).double()
    offsets = torch.tensor([LEFT, TOP] * 5, dtype=torch.float64)
    return ((px - offsets + 0.5) / SIDE).float()


def test_constants_match_the_generator():
    assert CELEBA_ATTRIBUTES == SYNTH_ATTRIBUTES
    assert LANDMARK_NAMES == SYNTH_LANDMARK_NAMES


def test_centre_square_box_of_real_and_generated_sizes():
    assert centre_square_box(178, 218) == (0, 20, 178)
    assert centre_square_box(WIDTH, HEIGHT) == (LEFT, TOP, SIDE)


def test_split_sizes_follow_the_partition_file(splits, celeba_truth):
    for split, data in splits.items():
        assert len(data) == len(truth_rows(celeba_truth, split))
        assert data.images.shape == (len(data), 3, SIDE, SIDE)
        assert data.images.dtype == torch.uint8


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_attributes_equal_the_generated_ones(splits, celeba_truth, split):
    rows = truth_rows(celeba_truth, split)
    for name in CELEBA_ATTRIBUTES:
        expected = torch.from_numpy(celeba_truth.attribute(name)[rows].astype(np.int64))
        assert torch.equal(splits[split].labels[name], expected), name
        assert splits[split].label_info[name].kind == "binary"


def test_identity_labels_name_the_generated_person(splits, celeba_truth):
    info = splits["train"].label_info["identity"]
    assert info.kind == "multiclass"
    assert info.num_classes == len(np.unique(celeba_truth.identity))
    for split, data in splits.items():
        rows = truth_rows(celeba_truth, split)
        names = [info.class_names[k] for k in data.labels["identity"].tolist()]
        assert names == [str(person) for person in celeba_truth.identity[rows]]
        assert data.labels["identity"].dtype == torch.long


def test_images_are_the_centre_crop_of_the_files(splits, celeba_truth):
    rows = truth_rows(celeba_truth, "train")
    crops = celeba_truth.images[rows, TOP:TOP + SIDE, LEFT:LEFT + SIDE]
    assert torch.equal(splits["train"].images, torch.from_numpy(crops).permute(0, 3, 1, 2))


@pytest.mark.parametrize("split", ["train", "test"])
def test_landmarks_follow_the_crop(splits, celeba_truth, split):
    rows = truth_rows(celeba_truth, split)
    landmarks = splits[split].labels["landmarks"]
    assert landmarks.dtype == torch.float32 and landmarks.shape == (len(rows), 10)
    assert torch.allclose(landmarks, expected_unit_landmarks(celeba_truth, rows), atol=1e-6)
    assert landmarks.min() >= 0 and landmarks.max() <= 1


def test_landmarks_follow_a_resize(celeba_root, splits, celeba_truth):
    small = load_splits("celeba", celeba_root, 24, splits=("train",))["train"]
    assert small.images.shape[1:] == (3, 24, 24)
    # Unit coordinates do not depend on the output size: pixel = u * 24 - 0.5 in the small image.
    assert torch.equal(small.labels["landmarks"], splits["train"].labels["landmarks"])
    rows = truth_rows(celeba_truth, "train")
    pixel_in_small = small.labels["landmarks"].double() * 24 - 0.5
    scale = 24 / SIDE
    expected = (torch.from_numpy(celeba_truth.landmarks[rows]).double()
                - torch.tensor([LEFT, TOP] * 5) + 0.5) * scale - 0.5
    assert torch.allclose(pixel_in_small, expected, atol=1e-5)


def test_landmarks_of_a_real_celeba_sized_image():
    # Real CelebA: 178 x 218 px, crop top 20. Eye at (69, 111) -> ((69.5) / 178, (91.5) / 178).
    unit = landmarks_to_unit(np.array([[69, 111] * 5]), 178, 218)
    assert np.allclose(unit[0, :2], [69.5 / 178, 91.5 / 178])


def test_label_info_describes_the_landmarks(splits):
    info = splits["train"].label_info["landmarks"]
    assert info.kind == "regression" and info.dim == 10 and info.num_outputs == 10
    assert info.x_indices == (0, 2, 4, 6, 8)
    swapped = [LANDMARK_NAMES[k] for k in info.flip_permutation]
    assert swapped == ["righteye_x", "righteye_y", "lefteye_x", "lefteye_y", "nose_x", "nose_y",
                       "rightmouth_x", "rightmouth_y", "leftmouth_x", "leftmouth_y"]


def test_flip_mirrors_images_and_landmarks(splits, celeba_truth):
    data = splits["train"]
    images = data.images.float() / 255
    generator = torch.Generator().manual_seed(4)
    draws = draw_augmentation(len(data), torch.Generator().manual_seed(4))
    new_images, new_labels = augment_batch(images, data.labels, data.label_info, generator)
    assert 0 < int(draws.flip.sum()) < len(data)

    jittered = color_jitter(images, draws)
    flip = draws.flip
    assert torch.allclose(new_images[flip], jittered[flip].flip(-1))
    assert torch.allclose(new_images[~flip], jittered[~flip])

    landmarks = data.labels["landmarks"]
    assert torch.equal(new_labels["landmarks"][~flip], landmarks[~flip])
    assert torch.equal(new_labels["Smiling"], data.labels["Smiling"])
    # Flipped ground truth, in pixels of the 40 px crop: the new left eye is the mirrored
    # right eye (x -> SIDE - 1 - x), and it lies left of the new right eye.
    rows = truth_rows(celeba_truth, "train")[flip.numpy()]
    truth = torch.from_numpy(celeba_truth.landmarks[rows]).double()
    new_px = new_labels["landmarks"][flip].double() * SIDE - 0.5
    assert torch.allclose(new_px[:, 0], SIDE - 1 - (truth[:, 2] - LEFT), atol=1e-4)
    assert torch.allclose(new_px[:, 1], truth[:, 3] - TOP, atol=1e-4)
    assert torch.allclose(new_px[:, 6], SIDE - 1 - (truth[:, 8] - LEFT), atol=1e-4)
    assert torch.allclose(new_px[:, 4], SIDE - 1 - (truth[:, 4] - LEFT), atol=1e-4)
    assert bool((truth[:, 0] < truth[:, 2]).all())  # "left" = the image's left side
    assert bool((new_px[:, 0] < new_px[:, 2]).all())  # still true after the flip and swap

    twice = flip_coordinates(flip_coordinates(landmarks, data.label_info["landmarks"]),
                             data.label_info["landmarks"])
    assert torch.allclose(twice, landmarks)


def test_dataset_is_a_torchvision_celeba(celeba_root, celeba_truth):
    dataset = CelebAFaces(celeba_root, split="valid", image_size=SIDE)
    assert isinstance(dataset, torchvision.datasets.CelebA)
    rows = truth_rows(celeba_truth, "valid")
    assert dataset.filename == [f"{k + 1:06d}.jpg" for k in rows]
    assert dataset.attr_names == list(CELEBA_ATTRIBUTES)
    assert torch.equal(dataset.attr, torch.from_numpy(celeba_truth.attributes[rows]).long())
    image, labels = dataset[0]
    assert image.shape == (3, SIDE, SIDE) and set(labels) == set(dataset.label_info)


def test_available_labels_reads_no_image(celeba_root, monkeypatch):
    def no_images(*args, **kwargs):
        raise AssertionError("available_labels opened an image")

    monkeypatch.setattr(PIL.Image, "open", no_images)
    labels = available_labels("celeba", celeba_root)
    assert set(labels) == {*CELEBA_ATTRIBUTES, "landmarks", "identity"}
    assert labels["Male"].class_names == ("not Male", "Male")


@pytest.mark.parametrize("names", [["a.jpg", "b.jpg", "c.jpg"], ["1", "2", "3"]])
def test_listing_parse_fast_and_checked_paths_agree(tmp_path, names):
    # Integer-like image names defeat the fast grid parse; the checked path must agree.
    path = tmp_path / "list.txt"
    values = [[1, -1, 20], [-1, 1, 3], [1, 1, -40]]
    rows = [f"{name}  {a:2d} {b:2d}   {c}" for name, (a, b, c) in zip(names, values, strict=True)]
    path.write_text("3\nx y z \n" + "\n".join(rows) + "\n\n")
    listing = read_listing(path, 3, has_header=True, what="3 values")
    assert listing.names == names and listing.header == ["x", "y", "z"]
    assert listing.values.tolist() == values and listing.lines == [3, 4, 5]
