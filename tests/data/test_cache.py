"""The decoded-image cache: reused without decoding, keyed by what matters, rebuilt if damaged."""

from __future__ import annotations

import os

import PIL.Image
import pytest
import torch

from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.cache import cache_path, decode_split, load_or_build_cache
from noisyarl.data.celeba import CelebAFaces
from noisyarl.data.registry import load_splits

SIZE = 32


def assert_same_split(a: ImageSplit, b: ImageSplit) -> None:
    assert torch.equal(a.images, b.images)
    assert a.labels.keys() == b.labels.keys()
    for name in a.labels:
        assert a.labels[name].dtype == b.labels[name].dtype
        assert torch.equal(a.labels[name], b.labels[name]), name
    assert a.label_info == b.label_info


def forbid_decoding(monkeypatch) -> None:
    def no_decoding(*args, **kwargs):
        raise AssertionError("an image was opened although the cache holds the split")

    monkeypatch.setattr(PIL.Image, "open", no_decoding)


def test_second_load_decodes_nothing_and_returns_the_same_tensors(
    celeba_root, tmp_path, monkeypatch
):
    first = load_splits("celeba", celeba_root, SIZE, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.pt"))) == 3
    forbid_decoding(monkeypatch)
    second = load_splits("celeba", celeba_root, SIZE, cache_dir=tmp_path)
    for split in ("train", "valid", "test"):
        assert_same_split(first[split], second[split])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_truncated_cache_file_is_rebuilt(celeba_root, tmp_path, monkeypatch):
    first = load_splits("celeba", celeba_root, SIZE, splits=("valid",), cache_dir=tmp_path)
    (path,) = tmp_path.glob("*.pt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = load_splits("celeba", celeba_root, SIZE, splits=("valid",), cache_dir=tmp_path)
    assert_same_split(first["valid"], rebuilt["valid"])
    forbid_decoding(monkeypatch)  # the rebuilt file is whole again and is used
    again = load_splits("celeba", celeba_root, SIZE, splits=("valid",), cache_dir=tmp_path)
    assert_same_split(first["valid"], again["valid"])


def test_garbage_cache_file_is_rebuilt(tmp_path):
    split = tiny_split()
    key = {"dataset": "toy", "split": "train"}
    cache_path(key, tmp_path).parent.mkdir(exist_ok=True)
    cache_path(key, tmp_path).write_bytes(b"\x00garbage")
    with pytest.warns(UserWarning):
        loaded = load_or_build_cache(key, tmp_path, lambda: split)
    assert_same_split(loaded, split)
    assert_same_split(load_or_build_cache(key, tmp_path, fail_to_build), split)


def fail_to_build() -> ImageSplit:
    raise AssertionError("the cache should have been used")


def tiny_split() -> ImageSplit:
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    return ImageSplit(
        images=images,
        labels={"a": torch.tensor([0, 1]), "xy": torch.tensor([[0.25, 0.5], [0.75, 0.5]])},
        label_info={"a": LabelInfo(kind="binary", num_classes=2, class_names=("no", "yes")),
                    "xy": LabelInfo(kind="regression", dim=2, x_indices=(0,),
                                    flip_permutation=(0, 1))},
    )


def test_key_covers_size_limits_and_label_files(celeba_copy, tmp_path):
    cache = tmp_path / "cache"
    load_splits("celeba", celeba_copy, SIZE, splits=("test",), cache_dir=cache)
    load_splits("celeba", celeba_copy, SIZE // 2, splits=("test",), cache_dir=cache)
    limited = load_splits("celeba", celeba_copy, SIZE, splits=("test",),
                          max_samples={"test": 2}, cache_dir=cache)
    assert len(limited["test"]) == 2
    assert len(list(cache.glob("*.pt"))) == 3
    attr_file = celeba_copy / "celeba" / "list_attr_celeba.txt"
    stat = attr_file.stat()
    os.utime(attr_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    load_splits("celeba", celeba_copy, SIZE, splits=("test",), cache_dir=cache)
    assert len(list(cache.glob("*.pt"))) == 4


def test_max_samples_takes_the_first_rows(celeba_root):
    full = load_splits("celeba", celeba_root, SIZE, splits=("train",))["train"]
    head = load_splits("celeba", celeba_root, SIZE, splits=("train",),
                       max_samples={"train": 5})["train"]
    assert_same_split(head, full.subset(torch.arange(5)))


def test_decode_threads_keep_row_order(celeba_root):
    dataset = CelebAFaces(celeba_root, "train", image_size=SIZE)
    assert_same_split(decode_split(dataset, num_workers=0), decode_split(dataset, num_workers=2))
