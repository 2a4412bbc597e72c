"""One entry point for every dataset: load decoded splits, list labels, describe a dataset.

``DATASETS`` maps a dataset name to how it is opened:

==========  ============================================================================
celeba      ``ROOT/celeba/`` (CelebA layout); splits from list_eval_partition.txt
fairface    ``ROOT/fairface/`` (FairFace layout); train/valid split the train CSV, test = val
cifar10     ``ROOT/cifar-10-batches-py/``; train/valid split the 50k, test = test_batch
folder      ``ROOT/images/`` + ``ROOT/labels.csv`` (your own data)
==========  ============================================================================

Every missing or malformed file raises :class:`DatasetError` with the expected layout and
where the real dataset comes from; so do a split without rows, an image file listed in two
splits (or twice), and a label file entry that points outside the dataset.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from noisyarl.data.base import SPLITS, ImageSplit, LabelInfo
from noisyarl.data.cache import (
    decode_split,
    file_fingerprint,
    read_cached_split,
    write_cached_split,
)
from noisyarl.data.celeba import (
    CELEBA_LAYOUT,
    CelebAFaces,
    celeba_available_labels,
    celeba_label_files,
)
from noisyarl.data.cifar import (
    CIFAR_LAYOUT,
    CIFAR10Local,
    cifar_available_labels,
    cifar_label_files,
)
from noisyarl.data.fairface import (
    FAIRFACE_LAYOUT,
    FairFaceDataset,
    fairface_available_labels,
    fairface_label_files,
)
from noisyarl.data.folder import (
    FOLDER_LAYOUT,
    FolderDataset,
    folder_label_files,
    folder_label_info,
    layout_error,
)

CACHE_VERSION = 1


@dataclass(frozen=True)
class DatasetSpec:
    """How one dataset kind is opened.

    open_split(root, split, image_size, seed, label_kinds) -> a dataset with ``load_image``,
    ``labels`` and ``label_info``. read_labels(root, label_kinds) -> label descriptions from
    text files only. label_files(root) -> the files whose sizes and mtimes key the cache.
    layout: the expected layout and where the dataset comes from (for error messages).
    """

    name: str
    open_split: Callable[..., Any]
    read_labels: Callable[[Path, dict[str, str] | None], dict[str, LabelInfo]]
    label_files: Callable[[Path], list[Path]]
    layout: str


def _open_celeba(root: Path, split: str, image_size: int, seed: int, label_kinds) -> Any:
    return CelebAFaces(root, split=split, image_size=image_size)


def _open_fairface(root: Path, split: str, image_size: int, seed: int, label_kinds) -> Any:
    return FairFaceDataset(root, split=split, image_size=image_size, seed=seed)


def _open_cifar(root: Path, split: str, image_size: int, seed: int, label_kinds) -> Any:
    return CIFAR10Local(root, split=split, image_size=image_size, seed=seed)


def _open_folder(root: Path, split: str, image_size: int, seed: int, label_kinds) -> Any:
    return FolderDataset(root, split=split, image_size=image_size, label_kinds=label_kinds,
                         seed=seed)


DATASETS: dict[str, DatasetSpec] = {
    "celeba": DatasetSpec("celeba", _open_celeba, lambda root, _: celeba_available_labels(root),
                          celeba_label_files, CELEBA_LAYOUT),
    "fairface": DatasetSpec("fairface", _open_fairface,
                            lambda root, _: fairface_available_labels(root),
                            fairface_label_files, FAIRFACE_LAYOUT),
    "cifar10": DatasetSpec("cifar10", _open_cifar, lambda root, _: cifar_available_labels(root),
                           cifar_label_files, CIFAR_LAYOUT),
    "folder": DatasetSpec("folder", _open_folder, folder_label_info, folder_label_files,
                          FOLDER_LAYOUT),
}


def dataset_spec(dataset: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``dataset``; ValueError listing the known names otherwise."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; known datasets: {', '.join(DATASETS)}")
    return DATASETS[dataset]


def _existing_root(spec: DatasetSpec, root: str | Path) -> Path:
    path = Path(root).expanduser()
    if not path.is_dir():
        raise layout_error(f"dataset root {path} does not exist (or is not a folder)",
                           spec.layout)
    return path.resolve()


class _FirstRows:
    """The first ``count`` rows of a dataset (same interface: load_image, labels, label_info)."""

    def __init__(self, dataset: Any, count: int) -> None:
        self.dataset = dataset
        self.count = min(count, len(dataset))
        self.image_size = dataset.image_size
        self.labels = {name: value[: self.count] for name, value in dataset.labels.items()}
        self.label_info = dataset.label_info

    def __len__(self) -> int:
        return self.count

    def load_image(self, index: int) -> torch.Tensor:
        return self.dataset.load_image(index)


def _decode_threads() -> int:
    return min(8, os.cpu_count() or 1)


def _check_split_request(splits: Sequence[str], max_samples: dict[str, int | None]) -> None:
    unknown = [split for split in (*splits, *max_samples) if split not in SPLITS]
    if unknown:
        raise ValueError(f"unknown split(s) {unknown}; splits are {SPLITS}")
    for split, count in max_samples.items():
        if count is not None and count < 1:
            raise ValueError(f"max_samples[{split!r}] must be >= 1 or None, got {count}")


def load_splits(
    dataset: str,
    root: str | Path,
    image_size: int,
    *,
    splits: Sequence[str] = SPLITS,
    max_samples: dict[str, int | None] | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    progress: bool = False,
    label_kinds: dict[str, str] | None = None,
) -> dict[str, ImageSplit]:
    """Decode the requested splits of ``dataset`` at ``root`` into memory.

    image_size: side in px of the square images (uint8 [N, 3, image_size, image_size]).
    max_samples: split -> keep its first n rows (file order, deterministic); None = all.
    cache_dir: keep decoded splits there and reuse them (None: decode every call); new
    cache files are written only after every requested split has decoded.
    seed: the train/valid split of FairFace, CIFAR-10 and folder datasets without a split
    column. label_kinds: declared label kinds of a ``folder`` dataset (others: inferred).
    Raises ValueError for an unknown dataset or split, DatasetError for bad data.
    """
    spec = dataset_spec(dataset)
    max_samples = dict(max_samples or {})
    _check_split_request(splits, max_samples)
    if image_size < 1:
        raise ValueError(f"image_size must be >= 1, got {image_size}")
    root_path = _existing_root(spec, root)
    result, built = {}, []
    for split in splits:
        count = max_samples.get(split)

        def build(split: str = split, count: int | None = count) -> ImageSplit:
            opened = spec.open_split(root_path, split, image_size, seed, label_kinds)
            if count is not None:
                opened = _FirstRows(opened, count)
            return decode_split(opened, num_workers=_decode_threads(), progress=progress)

        if cache_dir is None:
            result[split] = build()
            continue
        key = {
            "version": CACHE_VERSION, "dataset": spec.name, "root": str(root_path),
            "split": split, "image_size": image_size, "max_samples": count, "seed": seed,
            "label_kinds": sorted((label_kinds or {}).items()),
            "label_files": file_fingerprint(spec.label_files(root_path)),
        }
        cached = read_cached_split(key, cache_dir)
        if cached is None:
            cached = build()
            built.append((key, cached))
        result[split] = cached
    for key, split in built:  # only once every split decoded: bad data leaves no cache file
        write_cached_split(key, cache_dir, split)
    return result


def available_labels(
    dataset: str, root: str | Path, label_kinds: dict[str, str] | None = None
) -> dict[str, LabelInfo]:
    """Label name -> :class:`LabelInfo` of a dataset, from its text files only (no image)."""
    spec = dataset_spec(dataset)
    return spec.read_labels(_existing_root(spec, root), label_kinds)


def load_labels(
    dataset: str, root: str | Path, split: str = "train", *, seed: int = 0,
    label_kinds: dict[str, str] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, LabelInfo]]:
    """The label columns of one split, read from the text files without decoding any image.

    Returns (name -> tensor [N] or [N, D], name -> :class:`LabelInfo`). ``seed`` is the
    train/valid split of datasets without a split column, as in :func:`load_splits`.
    """
    _check_split_request([split], {})
    spec = dataset_spec(dataset)
    opened = spec.open_split(_existing_root(spec, root), split, 32, seed, label_kinds)
    return dict(opened.labels), dict(opened.label_info)


def describe_dataset(dataset: str, root: str | Path, image_size: int) -> str:
    """A short check and summary of a dataset on disk.

    Opens every split (validating all text files and that every image file exists), decodes
    the first image of each split, and lists per-split counts, where the ``file`` entries of a
    folder dataset lie, and every label with its kind and class balance on the train split.
    Raises DatasetError for bad data (also for a split without rows, or an image in two).
    """
    spec = dataset_spec(dataset)
    root_path = _existing_root(spec, root)
    opened = {split: spec.open_split(root_path, split, image_size, 0, None) for split in SPLITS}
    for split in opened.values():
        if len(split):
            split.load_image(0)
    counts = ", ".join(f"{name} {len(split)}" for name, split in opened.items())
    total = sum(len(split) for split in opened.values())
    train = opened["train"]
    lines = [
        f"{spec.name} at {root_path} (images resized to {image_size}x{image_size} px)",
        f"splits: {counts} ({total} images; every image file present, first of each decodes)",
    ]
    relative_to = getattr(train, "files_relative_to", None)
    if relative_to is not None:
        lines.append(f"'file' entries of labels.csv are relative to {relative_to} "
                     f"({train.image_folder})")
    lines.append(f"labels ({len(train.label_info)}; balance on the train split):")
    width = max((len(name) for name in train.label_info), default=0)
    for name, info in train.label_info.items():
        lines.append(f"  {name:<{width}}  {info.kind:<10}  "
                     f"{label_balance(train.labels[name], info)}")
    return "\n".join(lines)


def label_balance(values: torch.Tensor, info: LabelInfo, max_classes: int = 10) -> str:
    """A one-line class balance of a label column: shares per class, or a value range."""
    if values.numel() == 0:
        return "no rows"
    if info.kind == "regression":
        return (f"dim {info.dim}, values in [{float(values.min()):.3g}, "
                f"{float(values.max()):.3g}], mean {float(values.float().mean()):.3g}")
    num_classes = info.num_classes or int(values.max()) + 1
    counts = torch.bincount(values.long(), minlength=num_classes)
    if info.kind == "binary":
        positive = info.class_names[1] if info.class_names else "positive"
        return f"1 = {positive}: {100.0 * float(counts[1]) / len(values):.1f}%"
    if num_classes > max_classes:
        present = counts[counts > 0]
        return (f"{num_classes} classes, {len(present)} present, "
                f"{int(present.min())}-{int(present.max())} images each")
    names = info.class_names or tuple(str(k) for k in range(num_classes))
    return ", ".join(f"{names[k]} {100.0 * float(counts[k]) / len(values):.1f}%"
                     for k in range(num_classes))

