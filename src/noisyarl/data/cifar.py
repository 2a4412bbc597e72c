"""CIFAR-10 from a local ``cifar-10-batches-py`` folder, through torchvision's parser.

:class:`CIFAR10Local` subclasses :class:`torchvision.datasets.CIFAR10` with ``download=False``
and replaces its md5 checks by structural ones (files present and readable), so a small
CIFAR-format folder written by tests loads too.

Splits: the 50,000 training images are split deterministically (``seed``) into ``train``
(90%, 45k) and ``valid`` (10%, 5k); ``test_batch`` is ``test``. Labels: ``label`` (multiclass,
the 10 class names of batches.meta) and ``living`` (binary: airplane, automobile, ship and
truck are non-living = 0, the animals living = 1; method.md section 4). Images (32 x 32 px)
are resized to ``image_size`` when it differs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import CIFAR10

from noisyarl.data.base import DatasetError, LabelInfo
from noisyarl.data.folder import image_to_tensor, require_file, resize_square, split_rows

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
NON_LIVING_CLASSES = frozenset({"airplane", "automobile", "ship", "truck"})
SPLITS = ("train", "valid", "test")
DEFAULT_VALID_FRACTION = 0.1

CIFAR_LAYOUT = f"""expected CIFAR-10 layout (ROOT is the --root folder):
  ROOT/{BASE_FOLDER}/data_batch_1 ... data_batch_5   pickled training batches
  ROOT/{BASE_FOLDER}/{TEST_FILE}                          pickled test batch
  ROOT/{BASE_FOLDER}/{META_FILE}                        pickled class names
CIFAR-10 comes from https://www.cs.toronto.edu/~kriz/cifar.html ("CIFAR-10 python version",
cifar-10-python.tar.gz); extract it into ROOT. It is never downloaded here.
A generated stand-in in this layout (10 classes of procedural objects):
`noisyarl synth-objects ROOT`."""


def cifar_folder(root: str | Path) -> Path:
    """``ROOT/cifar-10-batches-py`` with every batch and the meta file present."""
    root = Path(root)
    require_file(root, CIFAR_LAYOUT, what="dataset root")
    folder = require_file(root / BASE_FOLDER, CIFAR_LAYOUT, what="folder")
    for name in (*TRAIN_FILES, TEST_FILE, META_FILE):
        require_file(folder / name, CIFAR_LAYOUT)
    return folder


def cifar_label_files(root: str | Path) -> list[Path]:
    """The batch and meta files of a CIFAR-10 root (what defines its content, for cache keys)."""
    folder = Path(root) / BASE_FOLDER
    return [folder / name for name in (*TRAIN_FILES, TEST_FILE, META_FILE)]


def read_class_names(root: str | Path) -> tuple[str, ...]:
    """The class names in ``batches.meta`` (label order)."""
    path = cifar_folder(root) / META_FILE
    meta = _unpickle(path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{path}: expected a pickled dict with a 'label_names' list")
    return tuple(str(name) for name in names)


def _unpickle(path: Path) -> object:
    """A CIFAR pickle (Python 2 strings decoded as latin1, like torchvision)."""
    try:
        with open(path, "rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except Exception as error:  # unpickling a damaged file can raise almost anything
        raise DatasetError(f"cannot read CIFAR file {path}: {error!r}") from error


def cifar_label_info(class_names: tuple[str, ...]) -> dict[str, LabelInfo]:
    """``label`` (multiclass over ``class_names``) and ``living`` (binary, 1 = animal)."""
    return {
        "label": LabelInfo(kind="multiclass", num_classes=len(class_names),
                           class_names=class_names),
        "living": LabelInfo(kind="binary", num_classes=2, class_names=("non-living", "living")),
    }


def living_of_classes(class_names: tuple[str, ...]) -> torch.Tensor:
    """long [num_classes]: 0 for airplane/automobile/ship/truck, 1 for the other classes."""
    return torch.tensor([0 if name in NON_LIVING_CLASSES else 1 for name in class_names],
                        dtype=torch.long)


class CIFAR10Local(CIFAR10):
    """One split of a local CIFAR-10 copy (see the module docstring).

    ``load_image(i)`` -> uint8 [3, image_size, image_size]; ``labels``: ``label`` and
    ``living``, long [N]; ``label_info`` describes them. Never downloads.
    """

    def __init__(
        self, root: str | Path, split: str = "train", image_size: int = 32, *,
        valid_fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        try:
            super().__init__(str(root), train=split != "test", download=False)
        except DatasetError:
            raise
        except Exception as error:  # unpickling a damaged file can raise almost anything
            raise DatasetError(
                f"cannot read the CIFAR-10 batches in {Path(root) / BASE_FOLDER} ({error!r}); "
                f"{_first_unreadable_batch(root, split)}\n{CIFAR_LAYOUT}"
            ) from error
        rows = np.arange(len(self.data), dtype=np.int64)
        if split != "test":
            valid, train = split_rows(len(rows), (valid_fraction, 1.0 - valid_fraction), seed)
            rows = train if split == "train" else valid
        self.split = split
        self.image_size = image_size
        self.data = self.data[rows]
        self.targets = [self.targets[i] for i in rows]
        class_names = tuple(self.classes)
        label = torch.tensor(self.targets, dtype=torch.long)
        self.labels = {"label": label, "living": living_of_classes(class_names)[label]}
        self.label_info = cifar_label_info(class_names)

    def _check_integrity(self) -> bool:
        """Structural check in place of torchvision's md5 check; raises DatasetError."""
        cifar_folder(self.root)
        return True

    def _load_meta(self) -> None:
        self.classes = list(read_class_names(self.root))
        self.class_to_idx = {name: k for k, name in enumerate(self.classes)}

    def download(self) -> None:
        raise DatasetError("CIFAR-10 is never downloaded here.\n" + CIFAR_LAYOUT)

    def load_image(self, index: int) -> torch.Tensor:
        """Row ``index``: uint8 [3, image_size, image_size] (resized when image_size != 32)."""
        pixels = self.data[index]  # uint8 [32, 32, 3]
        if pixels.shape[0] == self.image_size == pixels.shape[1]:
            return torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1).contiguous()
        return image_to_tensor(resize_square(Image.fromarray(pixels), self.image_size))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.load_image(index), {name: value[index] for name, value in self.labels.items()}


def _first_unreadable_batch(root: str | Path, split: str) -> str:
    """Which batch file of ``split`` fails to unpickle to a dict with data and labels."""
    folder = Path(root) / BASE_FOLDER
    for name in (TEST_FILE,) if split == "test" else TRAIN_FILES:
        try:
            entry = _unpickle(folder / name)
        except DatasetError as error:
            return str(error)
        if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
            return f"{folder / name}: expected a pickled dict with 'data' and 'labels'"
    return "every batch file unpickles; check their data shapes (N x 3072 uint8)"


def cifar_available_labels(root: str | Path) -> dict[str, LabelInfo]:
    """The labels of a CIFAR-10 root, from ``batches.meta`` only."""
    return cifar_label_info(read_class_names(root))
