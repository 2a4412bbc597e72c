"""Shared types of the data layer: label descriptions, decoded splits and data errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch

LabelKind = Literal["binary", "multiclass", "regression"]

#: The splits every dataset provides, in order; a run needs all three.
SPLITS = ("train", "valid", "test")


class DatasetError(RuntimeError):
    """A dataset is missing or malformed.

    The message names the file (and line, for a bad row), the layout that was expected and
    where the dataset comes from. The command line prints it without a traceback.
    """


@dataclass(frozen=True)
class LabelInfo:
    """What one label column of a dataset holds.

    kind: ``binary`` (values 0/1, long), ``multiclass`` (values 0..num_classes-1, long) or
    ``regression`` (float vector of ``dim`` values, e.g. landmarks normalised to [0, 1]).
    class_names: human-readable names of the classes, in label order (binary: [negative, positive]).
    flip_permutation: regression labels that are image coordinates give the index permutation
    that a horizontal flip applies (x -> 1 - x on ``x_indices``, then values permuted);
    ``None`` for labels that a flip leaves unchanged.
    """

    kind: LabelKind
    num_classes: int | None = None
    dim: int | None = None
    class_names: tuple[str, ...] | None = None
    x_indices: tuple[int, ...] | None = None
    flip_permutation: tuple[int, ...] | None = None

    @property
    def num_outputs(self) -> int:
        """Number of model outputs a head needs: 1 logit (binary), k logits, or ``dim`` values."""
        if self.kind == "binary":
            return 1
        if self.kind == "multiclass":
            assert self.num_classes is not None
            return self.num_classes
        assert self.dim is not None
        return self.dim


@dataclass
class ImageSplit:
    """One split, fully decoded and kept in memory (the decoded-image cache).

    images: uint8 tensor [N, 3, H, W] (values 0..255).
    labels: name -> tensor [N] (long) for binary/multiclass, [N, D] float32 for regression.
    label_info: name -> :class:`LabelInfo` for every entry of ``labels``.
    """

    images: torch.Tensor
    labels: dict[str, torch.Tensor]
    label_info: dict[str, LabelInfo] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def subset(self, indices: torch.Tensor) -> ImageSplit:
        """The rows ``indices`` (a 1-D long tensor) of this split, as a new split."""
        return ImageSplit(
            images=self.images[indices],
            labels={name: value[indices] for name, value in self.labels.items()},
            label_info=dict(self.label_info),
        )
