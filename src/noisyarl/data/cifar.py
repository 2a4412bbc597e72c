"""CIFAR-10 from a local ``cifar-10-batches-py`` folder, read by a restricted unpickler.

:class:`CIFAR10Local` subclasses :class:`torchvision.datasets.CIFAR10` (so it is one), but
reads the batches itself instead of through torchvision's loader, which unpickles without
limits: a crafted batch file could run any code while it loads. Here every pickle goes through
:class:`CifarUnpickler`, which admits only the globals a CIFAR python batch needs (numpy's
array and dtype reconstruction; bytes written by a Python 3 pickler at protocol 2) and refuses
anything else with a DatasetError naming the file and the refused global, before it runs.
md5 checks are replaced by structural ones (files present; each batch a dict with ``data``
uint8 [N, 3072] and N ``labels`` that index the class names), so a small CIFAR-format folder
written by tests loads too.

Splits: the 50,000 training images are split deterministically (``seed``) into ``train``
(90%, 45k) and ``valid`` (10%, 5k); ``test_batch`` is ``test``. Labels: ``label`` (multiclass,
the 10 class names of batches.meta) and ``living`` (binary: airplane, automobile, ship and
truck are non-living = 0, the animals living = 1; docs/method.md §4). Images (32 x 32 px)
are resized to ``image_size`` when it differs.
"""

from __future__ import annotations

import importlib
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torchvision.datasets import CIFAR10

from noisyarl.data.base import SPLITS, DatasetError, LabelInfo
from noisyarl.data.folder import image_to_tensor, require_file, resize_square, split_rows

BASE_FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{k}" for k in range(1, 6))
TEST_FILE = "test_batch"
META_FILE = "batches.meta"
NON_LIVING_CLASSES = frozenset({"airplane", "automobile", "ship", "truck"})
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
    meta = unpickle_cifar(path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: expected a pickled dict with a 'label_names' list of "
                           "class names")
    return tuple(names)


# ---------------------------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------------------------


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global that a CIFAR batch never holds (it could run code)."""


def _numpy_internal(module: str, name: str) -> Any:
    """numpy's ``<module>.<name>``: ``numpy._core`` (numpy 2) or ``numpy.core`` (numpy 1)."""
    for package in ("numpy._core", "numpy.core"):
        try:
            return getattr(importlib.import_module(f"{package}.{module}"), name)
        except (ImportError, AttributeError):
            continue
    raise RefusedGlobal(f"numpy has no {module}.{name}")


def _latin1_bytes(text: object, encoding: object = "utf-8") -> bytes:
    """``_codecs.encode(text, 'latin1')``: how a Python 3 pickler at protocol 2 writes bytes."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise RefusedGlobal(f"_codecs.encode with {type(text).__name__} and {encoding!r} "
                            "(only a str and 'latin1' rebuild bytes)")
    return text.encode("latin1")


def _empty_bytes(*args: object) -> bytes:
    """``bytes()``: how a Python 3 pickler at protocol 2 writes ``b''``."""
    if args:
        raise RefusedGlobal("bytes() with arguments (only b'' is written this way)")
    return b""


# (module, name) in the pickle -> a function returning the object it may stand for.
_NUMPY_FUNCTIONS = {("multiarray", "_reconstruct"), ("multiarray", "scalar"),
                    ("numeric", "_frombuffer")}
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[[], Any]] = {
    **{(f"{package}.{module}", name): (lambda m=module, n=name: _numpy_internal(m, n))
       for package in ("numpy.core", "numpy._core") for module, name in _NUMPY_FUNCTIONS},
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("_codecs", "encode"): lambda: _latin1_bytes,
    ("__builtin__", "bytes"): lambda: _empty_bytes,
    ("builtins", "bytes"): lambda: _empty_bytes,
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds only what a CIFAR python batch holds.

    Dicts, lists, tuples, str, bytes and numbers need no global; numpy arrays, dtypes and
    scalars need the numpy globals of ``ALLOWED_GLOBALS``. Every other global (``os.system``,
    ``builtins.eval``, any class) raises :class:`RefusedGlobal` before it is looked up.
    Python 2 strings are decoded as latin1, like torchvision.
    """

    def __init__(self, handle: Any) -> None:
        super().__init__(handle, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        allowed = ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise RefusedGlobal(f"refused to unpickle the global {module}.{name}")
        return allowed()


def unpickle_cifar(path: Path) -> object:
    """The object pickled in the CIFAR file ``path``, through :class:`CifarUnpickler`.

    Raises DatasetError naming the file: for a refused global (the file is not a CIFAR batch
    and is not loaded any further), or for a file that does not unpickle at all.
    """
    try:
        with open(path, "rb") as handle:
            return CifarUnpickler(handle).load()
    except RefusedGlobal as error:
        raise DatasetError(
            f"{path}: not a CIFAR-10 python file: {error}; a CIFAR batch holds only dicts, "
            "lists, strings, numbers and numpy arrays, so nothing else is unpickled (it could "
            "run code)"
        ) from error
    except Exception as error:  # unpickling a damaged file can raise almost anything
        raise DatasetError(f"cannot read CIFAR file {path}: {error!r}") from error


def read_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(data uint8 [N, 3072], labels int64 [N]) of one CIFAR batch file, checked.

    Raises DatasetError naming the file when it is not a dict with ``data`` (uint8, 3072
    values per image) and one label in 0..num_classes-1 per image.
    """
    entry = unpickle_cifar(path)
    if not isinstance(entry, dict) or "data" not in entry or "labels" not in entry:
        raise DatasetError(f"{path}: expected a pickled dict with 'data' and 'labels'")
    data, labels = entry["data"], np.asarray(entry["labels"])
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3 * 32 * 32:
        shape = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data)
        raise DatasetError(f"{path}: 'data' must be a uint8 array [N, 3072], got {shape}")
    if labels.ndim != 1 or len(labels) != len(data) or (len(labels) and labels.dtype.kind
                                                        not in "iu"):
        raise DatasetError(f"{path}: 'labels' must be {len(data)} integers (one per row of "
                           f"'data'), got {labels.dtype} {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if len(bad):
        raise DatasetError(f"{path}: label {int(labels[bad[0]])} of image {int(bad[0])} is not a "
                           f"class index 0..{num_classes - 1} of {META_FILE}")
    return data, labels.astype(np.int64)


def read_batches(
    root: str | Path, names: Sequence[str], num_classes: int
) -> tuple[np.ndarray, list[int]]:
    """(images uint8 [N, 32, 32, 3], labels) of the batch files ``names``, in order."""
    folder = cifar_folder(root)
    batches = [read_batch(folder / name, num_classes) for name in names]
    data = np.concatenate([data for data, _ in batches]).reshape(-1, 3, 32, 32)
    labels = np.concatenate([labels for _, labels in batches])
    return data.transpose((0, 2, 3, 1)), labels.tolist()


# ---------------------------------------------------------------------------------------------
# Labels and the dataset
# ---------------------------------------------------------------------------------------------


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
    ``living``, long [N]; ``label_info`` describes them. Never downloads; never runs
    torchvision's unrestricted unpickling. Raises DatasetError for a bad file or empty split.
    """

    def __init__(
        self, root: str | Path, split: str = "train", image_size: int = 32, *,
        valid_fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        super(CIFAR10, self).__init__(str(root))  # VisionDataset: skips CIFAR10's loader
        self.train = split != "test"
        self._load_meta()
        names = TRAIN_FILES if self.train else (TEST_FILE,)
        self.data, self.targets = read_batches(self.root, names, len(self.classes))
        rows = np.arange(len(self.data), dtype=np.int64)
        if split != "test":
            valid, train = split_rows(len(rows), (valid_fraction, 1.0 - valid_fraction), seed)
            rows = train if split == "train" else valid
        if not len(rows):
            raise DatasetError(
                f"{Path(self.root) / BASE_FOLDER}: split {split!r} has no rows "
                f"({len(self.data)} images in {', '.join(names)}; valid takes "
                f"{valid_fraction:.0%} of the training images)"
            )
        self.split = split
        self.image_size = image_size
        self.data = self.data[rows]
        self.targets = [self.targets[i] for i in rows]
        class_names = tuple(self.classes)
        label = torch.tensor(self.targets, dtype=torch.long)
        self.labels = {"label": label, "living": living_of_classes(class_names)[label]}
        self.label_info = cifar_label_info(class_names)

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


def cifar_available_labels(root: str | Path) -> dict[str, LabelInfo]:
    """The labels of a CIFAR-10 root, from ``batches.meta`` only."""
    return cifar_label_info(read_class_names(root))
