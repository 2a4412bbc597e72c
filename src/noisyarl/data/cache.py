"""Decode a split once into memory, and keep the decoded tensors in an on-disk cache.

:func:`decode_split` turns a dataset (anything with ``len``, ``load_image(i)``, ``labels`` and
``label_info``, like the loaders of this package) into an :class:`ImageSplit`: every image
decoded once into one uint8 tensor [N, 3, S, S]. Decoding runs in threads (Pillow releases
the GIL while it decodes and resizes), so errors surface as the loaders' DatasetError.

:func:`load_or_build_cache` stores one ``torch.save`` file per split (tensors, strings and
tuples only; read back with ``weights_only=True``, so loading cannot run code), named by a hash
of the caller's key. Writes are atomic (a temporary file in the same folder, then
``os.replace``); a file that cannot be read or does not match its key is rebuilt, not trusted.
The cache is keyed by the label files' sizes and modification times, not by the images: after
replacing image files in place, delete the cache folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import torch

from noisyarl.data.base import DatasetError, ImageSplit, LabelInfo
from noisyarl.utils.progress import progress as progress_bar

CACHE_FORMAT = 1


class DecodableDataset(Protocol):
    """What :func:`decode_split` needs from a dataset."""

    image_size: int
    labels: dict[str, torch.Tensor]
    label_info: dict[str, LabelInfo]

    def __len__(self) -> int: ...

    def load_image(self, index: int) -> torch.Tensor: ...


def decode_split(
    dataset: DecodableDataset, num_workers: int = 0, progress: bool = False
) -> ImageSplit:
    """Decode every image of ``dataset`` once: images uint8 [N, 3, S, S] plus its labels.

    num_workers: decoding threads (0 = decode in this thread). Images come out in row order
    whatever the number of threads. Raises DatasetError (naming the file) for an image that
    cannot be decoded or whose shape differs from the first one's.
    """
    count = len(dataset)
    images = torch.empty((count, 3, dataset.image_size, dataset.image_size), dtype=torch.uint8)
    bar = progress_bar(total=count, desc="decoding images", unit="img", enabled=progress)
    with bar:
        for index, image in enumerate(_decoded_images(dataset, num_workers)):
            if image.shape != images.shape[1:] or image.dtype != torch.uint8:
                raise DatasetError(
                    f"row {index}: decoded image is {tuple(image.shape)} {image.dtype}, "
                    f"expected {tuple(images.shape[1:])} uint8"
                )
            images[index] = image
            bar.update(1)
    labels = {name: value.clone() for name, value in dataset.labels.items()}
    for name, value in labels.items():
        if value.shape[0] != count:
            raise DatasetError(f"label {name!r} has {value.shape[0]} rows for {count} images")
    return ImageSplit(images=images, labels=labels, label_info=dict(dataset.label_info))


def _decoded_images(dataset: DecodableDataset, num_workers: int) -> Iterable[torch.Tensor]:
    """``dataset.load_image(i)`` for every row, in order (threads when num_workers > 0)."""
    if num_workers <= 0:
        yield from map(dataset.load_image, range(len(dataset)))
        return
    # Chunks bound the decoded images in flight, and an error stops the work within one chunk.
    chunk = 64 * num_workers
    with ThreadPoolExecutor(max_workers=num_workers) as pool:
        for start in range(0, len(dataset), chunk):
            indices = range(start, min(start + chunk, len(dataset)))
            yield from list(pool.map(dataset.load_image, indices))


def file_fingerprint(paths: Iterable[Path]) -> list[list[Any]]:
    """[[path, size in bytes, mtime in ns], ...] of ``paths`` (None, None for a missing file)."""
    fingerprint = []
    for path in paths:
        try:
            stat = os.stat(path)
            fingerprint.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            fingerprint.append([str(path), None, None])
    return fingerprint


def cache_key_text(key: dict[str, Any]) -> str:
    """The canonical JSON text of ``key`` (sorted keys), which names and checks a cache file."""
    return json.dumps(key, sort_keys=True, default=str)


def cache_path(key: dict[str, Any], cache_dir: str | Path) -> Path:
    """``cache_dir/<dataset>-<split>-<hash of key>.pt``."""
    digest = hashlib.sha256(cache_key_text(key).encode("utf-8")).hexdigest()[:20]
    label = "-".join(str(key[name]) for name in ("dataset", "split") if name in key)
    label = "".join(c if c.isalnum() or c in "-_" else "_" for c in label) or "split"
    return Path(cache_dir) / f"{label}-{digest}.pt"


def load_or_build_cache(
    key: dict[str, Any], cache_dir: str | Path, build: Callable[[], ImageSplit]
) -> ImageSplit:
    """The split cached under ``key`` in ``cache_dir``, or ``build()`` stored there.

    key: JSON-serialisable description of everything the split depends on (dataset kind,
    absolute root, split, image_size, max_samples, label-file fingerprint, ...). A cache file
    that is unreadable, truncated or holds another key is rebuilt (with a warning).
    """
    cached = read_cached_split(key, cache_dir)
    if cached is not None:
        return cached
    split = build()
    write_cached_split(key, cache_dir, split)
    return split


def read_cached_split(key: dict[str, Any], cache_dir: str | Path) -> ImageSplit | None:
    """The split cached under ``key`` in ``cache_dir``; None when there is none or it is
    unusable (unreadable, truncated, another key: with a warning)."""
    return _read_cache(cache_path(key, cache_dir), key)


def write_cached_split(key: dict[str, Any], cache_dir: str | Path, split: ImageSplit) -> None:
    """Store ``split`` under ``key`` in ``cache_dir`` (atomically; ``cache_dir`` is created)."""
    _write_cache(cache_path(key, cache_dir), key, split)


def _read_cache(path: Path, key: dict[str, Any]) -> ImageSplit | None:
    if not path.exists():
        return None
    try:
        record = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return _split_from_record(record, key)
    except Exception as error:  # a damaged file can fail anywhere in the reader: rebuild it
        warnings.warn(f"decoded-image cache {path} is unusable ({error}); rebuilding it",
                      stacklevel=3)
        return None


def _split_from_record(record: Any, key: dict[str, Any]) -> ImageSplit:
    if not isinstance(record, dict) or record.get("format") != CACHE_FORMAT:
        raise ValueError("not a cache record of this version")
    if record.get("key") != cache_key_text(key):
        raise ValueError("the record was written for another key")
    images, labels = record["images"], record["labels"]
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(f"images are {images.dtype} {tuple(images.shape)}")
    if any(value.shape[0] != images.shape[0] for value in labels.values()):
        raise ValueError("label and image counts differ")
    label_info = {name: _label_info_from_dict(fields)
                  for name, fields in record["label_info"].items()}
    if set(label_info) != set(labels):
        raise ValueError("label_info and labels name different labels")
    return ImageSplit(images=images, labels=dict(labels), label_info=label_info)


def _label_info_from_dict(fields: dict[str, Any]) -> LabelInfo:
    return LabelInfo(**{name: tuple(value) if isinstance(value, list | tuple) else value
                        for name, value in fields.items()})


def _write_cache(path: Path, key: dict[str, Any], split: ImageSplit) -> None:
    """Store ``split`` at ``path`` atomically (temporary file in the same folder, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": CACHE_FORMAT,
        "key": cache_key_text(key),
        "images": split.images.contiguous(),
        "labels": {name: value.contiguous() for name, value in split.labels.items()},
        "label_info": {name: dataclasses.asdict(info) for name, info in split.label_info.items()},
    }
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp",
                                         delete=False)
    try:
        with handle:
            torch.save(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
