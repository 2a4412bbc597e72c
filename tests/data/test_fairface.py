"""The FairFace loader returns what the generator drew, with a seeded train/valid split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from noisyarl.data.fairface import (
    FAIRFACE_AGE_BINS,
    FAIRFACE_RACES,
    FairFaceDataset,
    fairface_split_rows,
)
from noisyarl.data.registry import available_labels, load_splits
from noisyarl.synthetic.faces import FAIRFACE_AGE_BINS as SYNTH_AGE_BINS
from noisyarl.synthetic.faces import FAIRFACE_RACES as SYNTH_RACES
from noisyarl.synthetic.faces import fairface_file_names

SIZE = 40  # conftest.FAIRFACE_CONFIG draws 40 x 40 px images


@pytest.fixture(scope="module")
def splits(fairface_root):
    return load_splits("fairface", fairface_root, SIZE)


@pytest.fixture(scope="module")
def truth_row_of_file(fairface_truth):
    return {name: k for k, name in enumerate(fairface_file_names(fairface_truth.partition))}


def test_constants_match_the_generator():
    assert FAIRFACE_AGE_BINS == SYNTH_AGE_BINS
    assert FAIRFACE_RACES == SYNTH_RACES


def test_train_and_valid_split_the_train_csv_and_test_is_val(fairface_root, fairface_truth):
    train = FairFaceDataset(fairface_root, "train", SIZE)
    valid = FairFaceDataset(fairface_root, "valid", SIZE)
    test = FairFaceDataset(fairface_root, "test", SIZE)
    train_count = int((fairface_truth.partition == 0).sum())
    train_files = {f"train/{k}.jpg" for k in range(1, train_count + 1)}
    assert set(train.files) | set(valid.files) == train_files
    assert not set(train.files) & set(valid.files)
    assert len(valid) == round(0.1 * len(train_files))
    assert all(name.startswith("val/") for name in test.files)
    assert len(test) == int((fairface_truth.partition == 1).sum())


def test_the_split_is_seeded():
    first, second = fairface_split_rows(200, 0.1, seed=0), fairface_split_rows(200, 0.1, seed=0)
    other = fairface_split_rows(200, 0.1, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))
    assert not np.array_equal(first[1], other[1])
    assert sorted(np.concatenate(first).tolist()) == list(range(200))


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_labels_and_pixels_equal_the_generated_ones(
    fairface_root, splits, fairface_truth, truth_row_of_file, split
):
    files = FairFaceDataset(fairface_root, split, SIZE).files
    rows = np.array([truth_row_of_file[name] for name in files])
    data = splits[split]
    assert torch.equal(data.labels["age"], torch.from_numpy(fairface_truth.age_bin[rows]))
    assert torch.equal(data.labels["race"], torch.from_numpy(fairface_truth.race[rows]))
    male = fairface_truth.attribute("Male")[rows].astype(np.int64)
    assert torch.equal(data.labels["gender"], torch.from_numpy(male))
    pixels = torch.from_numpy(fairface_truth.images[rows]).permute(0, 3, 1, 2)
    assert torch.equal(data.images, pixels)


def test_label_info(splits):
    info = splits["train"].label_info
    assert info["age"].kind == "multiclass" and info["age"].num_classes == 9
    assert info["age"].class_names == FAIRFACE_AGE_BINS
    assert info["race"].kind == "multiclass" and info["race"].class_names == FAIRFACE_RACES
    assert info["gender"].kind == "binary" and info["gender"].class_names == ("Female", "Male")


def test_images_are_resized_to_a_square(fairface_root):
    test = load_splits("fairface", fairface_root, 24, splits=("test",))["test"]
    assert test.images.shape[1:] == (3, 24, 24)


def test_root_may_be_the_fairface_folder_itself(fairface_root):
    assert set(available_labels("fairface", fairface_root / "fairface")) == {"age", "gender",
                                                                             "race"}
    inner = FairFaceDataset(fairface_root / "fairface", "test", SIZE)
    assert inner.files == FairFaceDataset(fairface_root, "test", SIZE).files
