"""CIFAR-10 through torchvision's parser from a tiny CIFAR-format folder written here."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from noisyarl.data.base import DatasetError
from noisyarl.data.cifar import CIFAR10Local
from noisyarl.data.registry import available_labels, load_splits

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
PER_BATCH = 10  # 5 training batches -> 50 training images (45 train / 5 valid), 10 test images


def write_tiny_cifar(root: Path, seed: int = 0) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Write ROOT/cifar-10-batches-py like the real release; return {file: (data, labels)}.

    Each batch is a pickled dict with 'data' (uint8 [N, 3072]: 1024 red, 1024 green, 1024 blue
    values, row-major) and 'labels' (list of N ints); batches.meta holds 'label_names'. Keys
    are str, which is what the real Python-2 pickles give under torchvision's latin1 decoding.
    """
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    written = {}
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=PER_BATCH).tolist()
        with open(folder / name, "wb") as handle:
            pickle.dump({"batch_label": name, "data": data, "labels": labels,
                         "filenames": [f"{name}_{k}.png" for k in range(PER_BATCH)]}, handle,
                        protocol=2)
        written[name] = (data, labels)
    with open(folder / "batches.meta", "wb") as handle:
        pickle.dump({"label_names": CLASS_NAMES, "num_cases_per_batch": PER_BATCH,
                     "num_vis": 3072}, handle, protocol=2)
    return written


@pytest.fixture
def cifar_root(tmp_path):
    written = write_tiny_cifar(tmp_path)
    return tmp_path, written


def as_images(data: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())


def test_splits_sizes_labels_and_pixels(cifar_root):
    root, written = cifar_root
    splits = load_splits("cifar10", root, 32)
    assert {name: len(split) for name, split in splits.items()} == {"train": 45, "valid": 5,
                                                                    "test": 10}
    test_data, test_labels = written["test_batch"]
    assert torch.equal(splits["test"].images, as_images(test_data))
    assert splits["test"].labels["label"].tolist() == test_labels

    train_data = np.concatenate([written[f"data_batch_{k}"][0] for k in range(1, 6)])
    train_labels = sum((written[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    expected = {(train_data[k].tobytes(), train_labels[k]) for k in range(50)}
    loaded = {(image.numpy().tobytes(), int(label))
              for name in ("train", "valid")
              for image, label in zip(splits[name].images, splits[name].labels["label"],
                                      strict=True)}
    assert loaded == expected  # train and valid partition the 50 training images


def test_living_label(cifar_root):
    root, _ = cifar_root
    split = load_splits("cifar10", root, 32, splits=("test",))["test"]
    names = [CLASS_NAMES[k] for k in split.labels["label"].tolist()]
    expected = [0 if name in ("airplane", "automobile", "ship", "truck") else 1 for name in names]
    assert split.labels["living"].tolist() == expected
    info = split.label_info
    assert info["label"].kind == "multiclass" and info["label"].class_names == tuple(CLASS_NAMES)
    assert info["living"].kind == "binary"


def test_is_torchvision_cifar_and_resizes(cifar_root):
    root, _ = cifar_root
    dataset = CIFAR10Local(root, "test", image_size=48)
    assert isinstance(dataset, torchvision.datasets.CIFAR10)
    image, labels = dataset[0]
    assert image.shape == (3, 48, 48) and image.dtype == torch.uint8
    assert set(labels) == {"label", "living"}


def test_train_valid_split_is_seeded(cifar_root):
    root, _ = cifar_root
    first = CIFAR10Local(root, "valid", seed=3).data
    again = CIFAR10Local(root, "valid", seed=3).data
    other = CIFAR10Local(root, "valid", seed=4).data
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_available_labels_from_meta_only(cifar_root):
    root, _ = cifar_root
    assert set(available_labels("cifar10", root)) == {"label", "living"}


def test_missing_folder_names_the_layout(tmp_path):
    with pytest.raises(DatasetError) as error:
        load_splits("cifar10", tmp_path, 32)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    for name in ("data_batch_1", "data_batch_5", "test_batch", "batches.meta", "toronto.edu"):
        assert name in message


def test_missing_batch_file_is_named(cifar_root):
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="data_batch_3"):
        load_splits("cifar10", root, 32)


def test_corrupt_batch_file_is_named(cifar_root):
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DatasetError, match="test_batch"):
        load_splits("cifar10", root, 32, splits=("test",))
