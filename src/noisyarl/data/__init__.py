"""The data layer: real dataset loaders, tasks, the decoded-image cache, batch augmentation and
the procedural face generator (``noisyarl.synthetic.faces``)."""

from noisyarl.data.augment import augment_batch, iterate_batches
from noisyarl.data.base import DatasetError, ImageSplit, LabelInfo
from noisyarl.data.registry import (
    DATASETS,
    available_labels,
    describe_dataset,
    load_labels,
    load_splits,
)
from noisyarl.data.tasks import Task

__all__ = [
    "DATASETS",
    "DatasetError",
    "ImageSplit",
    "LabelInfo",
    "Task",
    "augment_batch",
    "available_labels",
    "describe_dataset",
    "iterate_batches",
    "load_labels",
    "load_splits",
]
