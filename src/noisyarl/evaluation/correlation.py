"""Task correlation (appendix B): how strongly the private and utility labels go together.

A defence cannot hide a private label that the utility label gives away; Cramér's V of the two
columns says how much of that is unavoidable (the paper: 0.1367 for CelebA Male/Smiling, 0.5316
for Mouth_Slightly_Open/Smiling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from noisyarl.data.registry import load_labels
from noisyarl.evaluation.metrics import contingency_table, cramers_v


@dataclass(frozen=True)
class LabelAssociation:
    """column_a/column_b: label names; split: which split was read; samples: rows counted.
    cramers_v: in [0, 1]. table: counts [r, c] of (a value, b value), values in sorted order."""

    column_a: str
    column_b: str
    split: str
    samples: int
    cramers_v: float
    table: np.ndarray

    def describe(self) -> str:
        """One line for the terminal."""
        return (f"Cramér's V({self.column_a}, {self.column_b}) = {self.cramers_v:.4f} "
                f"on {self.samples} {self.split} rows")


def label_association(
    dataset: str, root: str | Path, column_a: str, column_b: str, split: str = "train"
) -> LabelAssociation:
    """Cramér's V between two categorical label columns of a dataset split (no image decoded).

    Raises ValueError naming an unknown column or a regression column.
    """
    labels, info = load_labels(dataset, root, split)
    for column in (column_a, column_b):
        if column not in labels:
            raise ValueError(f"unknown label {column!r}; {dataset} has: {', '.join(labels)}")
        if info[column].kind == "regression":
            raise ValueError(f"{column!r} is a regression label; Cramér's V needs categories")
    a, b = labels[column_a].numpy(), labels[column_b].numpy()
    return LabelAssociation(column_a, column_b, split, int(a.shape[0]), cramers_v(a, b),
                            contingency_table(a, b))


__all__ = ["LabelAssociation", "label_association"]
