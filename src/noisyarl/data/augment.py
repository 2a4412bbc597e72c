"""Batch iteration over decoded splits, and the training augmentation (docs/method.md §2).

Augmentation = ColorJitter(brightness=0.1, contrast=0.1) + random horizontal flip (p = 0.5),
applied per sample but vectorised over the batch:

- brightness: ``x * b`` with ``b ~ U[0.9, 1.1]``, clamped to [0, 1];
- contrast: ``c * x + (1 - c) * m`` with ``c ~ U[0.9, 1.1]`` and ``m`` the mean of the image's
  grayscale (0.2989 R + 0.587 G + 0.114 B), clamped to [0, 1], as torchvision computes it;
- the two run in a random order per sample (torchvision's ColorJitter permutes its ops);
- flip: the image is mirrored left-right, and every regression label whose LabelInfo gives
  ``x_indices``/``flip_permutation`` (landmarks) follows: ``x -> 1 - x`` on the x coordinates,
  then ``value[:, i] <- value[:, flip_permutation[i]]`` (left and right points swap).

Evaluation never augments: every evaluation and attack calls :func:`iterate_batches` with
``augment=False``, which yields exactly the stored pixels / 255.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch

from noisyarl.data.base import ImageSplit, LabelInfo

BRIGHTNESS = 0.1
CONTRAST = 0.1
FLIP_PROBABILITY = 0.5
GRAYSCALE_WEIGHTS = (0.2989, 0.587, 0.114)


@dataclass
class AugmentDraws:
    """The random choices for one batch of B samples (all tensors [B]).

    brightness, contrast: factors in [0.9, 1.1). contrast_first: contrast before brightness.
    flip: mirror the sample left-right.
    """

    brightness: torch.Tensor
    contrast: torch.Tensor
    contrast_first: torch.Tensor
    flip: torch.Tensor

    def to(self, device: torch.device) -> AugmentDraws:
        return AugmentDraws(*(value.to(device) for value in
                              (self.brightness, self.contrast, self.contrast_first, self.flip)))


def draw_augmentation(batch_size: int, generator: torch.Generator | None = None) -> AugmentDraws:
    """Draw the augmentation of ``batch_size`` samples from ``generator`` (fixed draw order)."""
    device = generator.device if generator is not None else torch.device("cpu")

    def uniform() -> torch.Tensor:
        return torch.rand(batch_size, generator=generator, device=device)

    return AugmentDraws(
        brightness=1.0 - BRIGHTNESS + 2.0 * BRIGHTNESS * uniform(),
        contrast=1.0 - CONTRAST + 2.0 * CONTRAST * uniform(),
        contrast_first=uniform() < 0.5,
        flip=uniform() < FLIP_PROBABILITY,
    )


def _per_sample(values: torch.Tensor) -> torch.Tensor:
    return values.reshape(-1, 1, 1, 1)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """images float [B, 3, H, W] in [0, 1] times ``factors`` [B], clamped to [0, 1]."""
    return (images * _per_sample(factors).to(images.dtype)).clamp_(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend images [B, 3, H, W] with their grayscale means by ``factors`` [B]; clamp to [0, 1]."""
    weights = torch.tensor(GRAYSCALE_WEIGHTS, dtype=images.dtype, device=images.device)
    gray = torch.einsum("bchw,c->bhw", images, weights)
    means = gray.mean(dim=(1, 2)).reshape(-1, 1, 1, 1)
    factors = _per_sample(factors).to(images.dtype)
    return (factors * images + (1.0 - factors) * means).clamp_(0.0, 1.0)


def color_jitter(images: torch.Tensor, draws: AugmentDraws) -> torch.Tensor:
    """Brightness and contrast jitter of images [B, 3, H, W], each sample in its drawn order."""
    brightness_first = adjust_contrast(adjust_brightness(images, draws.brightness),
                                       draws.contrast)
    contrast_first = adjust_brightness(adjust_contrast(images, draws.contrast),
                                       draws.brightness)
    return torch.where(_per_sample(draws.contrast_first), contrast_first, brightness_first)


def flips_with_image(info: LabelInfo | None) -> bool:
    """Whether a label changes under a horizontal flip (image coordinates)."""
    return info is not None and info.kind == "regression" and (
        info.x_indices is not None or info.flip_permutation is not None
    )


def flip_coordinates(values: torch.Tensor, info: LabelInfo) -> torch.Tensor:
    """Coordinates [B, D] in [0, 1] of every sample as after a horizontal image flip.

    ``x -> 1 - x`` on ``info.x_indices``, then columns permuted by ``info.flip_permutation``
    (``out[:, i] = mirrored[:, flip_permutation[i]]``). Applying it twice is the identity.
    """
    mirrored = values.clone()
    if info.x_indices:
        x_columns = list(info.x_indices)
        mirrored[:, x_columns] = 1.0 - mirrored[:, x_columns]
    if info.flip_permutation is not None:
        mirrored = mirrored[:, list(info.flip_permutation)]
    return mirrored


def augment_batch(
    images: torch.Tensor,
    labels: dict[str, torch.Tensor],
    label_info: dict[str, LabelInfo],
    generator: torch.Generator | None = None,
    draws: AugmentDraws | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Colour-jitter and randomly flip a batch (see the module docstring).

    images: float [B, 3, H, W] in [0, 1]. labels: name -> [B] or [B, D]; coordinate labels
    (see :func:`flips_with_image`) are flipped with their images, others are returned as is.
    generator: source of every random draw (None: torch's global generator).
    draws: use these draws (for B samples) instead of drawing from ``generator``.
    Returns new tensors; the inputs are not modified.
    """
    if draws is None:
        draws = draw_augmentation(images.shape[0], generator)
    draws = draws.to(images.device)
    jittered = color_jitter(images, draws)
    flipped = torch.where(_per_sample(draws.flip), jittered.flip(-1), jittered)
    new_labels = dict(labels)
    for name, value in labels.items():
        info = label_info.get(name)
        if flips_with_image(info):
            assert info is not None
            flip_rows = draws.flip.to(value.device).reshape(-1, 1)
            new_labels[name] = torch.where(flip_rows, flip_coordinates(value, info), value)
    return flipped, new_labels


def iterate_batches(
    split: ImageSplit,
    batch_size: int,
    *,
    shuffle: bool,
    augment: bool,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
    device: str | torch.device = "cpu",
    channels_last: bool = False,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[tuple[torch.Tensor, dict[str, torch.Tensor]]]:
    """Yield ``(images float32 [b, 3, H, W] in [0, 1], labels)`` batches of ``split``.

    The uint8 pixels move to ``device`` first and are converted there (pixels / 255); on CUDA
    the next batch is gathered into pinned memory in a background thread while the current
    one trains, and copied without blocking. shuffle: a random order from ``generator`` (else
    row order). augment: apply :func:`augment_batch` (training only; evaluation and attacks pass
    ``augment=False`` and get the stored pixels / 255 exactly). drop_last: skip a final partial
    batch. Labels are moved to ``device`` too. channels_last: images in the channels-last
    memory format.

    rank, world_size: data parallelism (torchrun). ``batch_size`` is the *global* batch: every
    rank draws the same order and the same augmentation of the global batch from the same
    ``generator`` (like ``DistributedSampler`` with ``set_epoch``: a new order each epoch, the
    same on all ranks) and keeps its own contiguous shard of it, ``b = batch_size /
    world_size`` rows. So N ranks see exactly the batches of one process, split N ways. A
    shuffled (training) pass trims a final partial batch to a multiple of ``world_size``;
    evaluation passes split it as evenly as possible (a rank may get an empty batch).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is not in [0, {world_size})")
    device = torch.device(device)
    count = len(split)
    order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
    stop = count - count % batch_size if drop_last else count
    global_batches = [order[start:start + batch_size] for start in range(0, stop, batch_size)]
    shards = [_shard(rows, rank, world_size, even=shuffle) for rows in global_batches]
    for global_rows, (rows, host_images) in zip(global_batches,
                                                _host_batches(split, shards, device), strict=True):
        images = to_unit_float(_to_device(host_images, device))
        labels = {name: _to_device(value[rows], device) for name, value in split.labels.items()}
        if augment:
            # Drawn for the global batch, as one process draws them, then this rank's shard.
            draws = draw_augmentation(len(global_rows), generator)
            images, labels = augment_batch(images, labels, split.label_info,
                                           draws=_shard_draws(draws, rank, world_size,
                                                              even=shuffle))
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images, labels


def _shard_bounds(size: int, rank: int, world_size: int, even: bool) -> tuple[int, int]:
    """[start, stop) of ``rank``'s contiguous part of a global batch of ``size`` rows."""
    if even:
        size -= size % world_size
    return size * rank // world_size, size * (rank + 1) // world_size


def _shard(rows: torch.Tensor, rank: int, world_size: int, even: bool) -> torch.Tensor:
    start, stop = _shard_bounds(len(rows), rank, world_size, even)
    return rows[start:stop]


def _shard_draws(draws: AugmentDraws, rank: int, world_size: int, even: bool) -> AugmentDraws:
    start, stop = _shard_bounds(len(draws.flip), rank, world_size, even)
    return AugmentDraws(*(value[start:stop] for value in
                          (draws.brightness, draws.contrast, draws.contrast_first, draws.flip)))


def _host_batches(
    split: ImageSplit, shards: list[torch.Tensor], device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(rows, uint8 images of those rows) per batch; on CUDA gathered one batch ahead into
    pinned memory by a background thread (indexing releases the GIL)."""
    if device.type != "cuda":
        for rows in shards:
            yield rows, split.images[rows]
        return

    def gather(rows: torch.Tensor) -> torch.Tensor:
        return split.images[rows].pin_memory()

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(gather, shards[0]) if shards else None
        for index, rows in enumerate(shards):
            assert pending is not None
            images = pending.result()
            pending = pool.submit(gather, shards[index + 1]) if index + 1 < len(shards) else None
            yield rows, images


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 ``pixels / 255``, correctly rounded on every device.

    The divisor is a tensor on the images' device, not a Python number: CUDA turns a division
    by a CPU scalar into a multiplication by its reciprocal, which is one ulp off for some
    levels, and evaluation would then differ between CPU and GPU.
    """
    return images.float().div_(torch.full((), 255.0, device=images.device))


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":
        pinned = tensor if tensor.is_pinned() else tensor.pin_memory()
        return pinned.to(device, non_blocking=True)
    return tensor.to(device)
