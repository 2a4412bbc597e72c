"""FairFace (padding 0.25 release) in its published layout: two label CSVs plus image folders.

FairFace ships only a train and a val split. Here ``train`` and ``valid`` are a deterministic
split of ``fairface_label_train.csv`` (``valid_fraction`` of its rows, 10% by default, drawn
with ``seed``), and ``test`` is ``fairface_label_val.csv``. Images are resized to a square
``image_size`` (the real images are already square, 448 x 448 px).

Labels: ``age`` (multiclass, the 9 bins of ``FAIRFACE_AGE_BINS``), ``gender`` (binary,
1 = Male) and ``race`` (multiclass, the 7 groups of ``FAIRFACE_RACES``, spelled as in the CSV).

Both CSVs are read whichever split is opened, and refused (DatasetError) when they share an
image file (the test split would hold training images), when one lists a file twice, when a
``file`` lies outside the fairface folder, or when a split gets no rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from noisyarl.data.base import SPLITS, DatasetError, LabelInfo
from noisyarl.data.folder import (
    SYNTH_HINT,
    CsvTable,
    load_square_image,
    read_csv_table,
    refuse_repeated_files,
    refuse_split_overlap,
    relative_file,
    require_file,
    split_rows,
)

FAIRFACE_AGE_BINS: tuple[str, ...] = (
    "0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70",
)  # fmt: skip
FAIRFACE_RACES: tuple[str, ...] = (
    "East Asian", "Indian", "Black", "White", "Middle Eastern", "Latino_Hispanic",
    "Southeast Asian",
)  # fmt: skip
FAIRFACE_GENDERS: tuple[str, ...] = ("Female", "Male")

TRAIN_CSV = "fairface_label_train.csv"
VAL_CSV = "fairface_label_val.csv"
REQUIRED_COLUMNS = ("file", "age", "gender", "race")
DEFAULT_VALID_FRACTION = 0.1

FAIRFACE_LAYOUT = f"""expected FairFace layout (ROOT is the --root folder):
  ROOT/fairface/train/1.jpg ...          training images (square JPEG)
  ROOT/fairface/val/1.jpg ...            validation images
  ROOT/fairface/{TRAIN_CSV}   columns file,age,gender,race,service_test
  ROOT/fairface/{VAL_CSV}     (file like 'train/1.jpg', relative to ROOT/fairface)
(ROOT may also be the fairface folder itself.) FairFace comes from
https://github.com/joojs/fairface (fairface-img-margin025-trainval.zip and the two label CSVs).
{SYNTH_HINT}"""

LABEL_VOCABULARIES = {"age": FAIRFACE_AGE_BINS, "gender": FAIRFACE_GENDERS, "race": FAIRFACE_RACES}


def fairface_label_info() -> dict[str, LabelInfo]:
    """``age`` (multiclass 9), ``gender`` (binary, 1 = Male) and ``race`` (multiclass 7)."""
    return {
        "age": LabelInfo(kind="multiclass", num_classes=len(FAIRFACE_AGE_BINS),
                         class_names=FAIRFACE_AGE_BINS),
        "gender": LabelInfo(kind="binary", num_classes=2, class_names=FAIRFACE_GENDERS),
        "race": LabelInfo(kind="multiclass", num_classes=len(FAIRFACE_RACES),
                          class_names=FAIRFACE_RACES),
    }


def fairface_folder(root: str | Path) -> Path:
    """The folder holding the FairFace CSVs: ``ROOT/fairface`` or ``ROOT`` itself."""
    root = Path(root)
    require_file(root, FAIRFACE_LAYOUT, what="dataset root")
    if (root / "fairface").is_dir():
        return root / "fairface"
    if (root / TRAIN_CSV).exists() or (root / VAL_CSV).exists():
        return root
    return require_file(root / "fairface", FAIRFACE_LAYOUT, what="folder")


def fairface_label_files(root: str | Path) -> list[Path]:
    """The two label CSVs of a FairFace root (what defines its labels, for cache keys)."""
    folder = fairface_folder(root)
    return [folder / TRAIN_CSV, folder / VAL_CSV]


@dataclass
class FairFaceTable:
    """One FairFace CSV, validated: files [N] and label tensors long [N] (see module docstring)."""

    table: CsvTable
    files: list[str]
    labels: dict[str, torch.Tensor]


def read_fairface_csv(path: Path) -> FairFaceTable:
    """Parse one FairFace label CSV; DatasetError names the file and line of a bad row.

    Also refused: a CSV without rows, a ``file`` outside the fairface folder, a file listed
    twice.
    """
    table = read_csv_table(path, REQUIRED_COLUMNS, FAIRFACE_LAYOUT)
    if not table.rows:
        raise DatasetError(f"{path}: no rows after the header line")
    files = [relative_file(file, table.where(row), f"the fairface folder {path.parent}")
             for row, file in enumerate(table.column("file"))]
    refuse_repeated_files(path, files, table.line_numbers)
    labels = {name: _encode_column(table, name, vocabulary)
              for name, vocabulary in LABEL_VOCABULARIES.items()}
    return FairFaceTable(table, files, labels)


def read_fairface_tables(folder: Path) -> tuple[FairFaceTable, FairFaceTable]:
    """(train CSV, val CSV) of the fairface folder, refused when they share an image file."""
    train, val = read_fairface_csv(folder / TRAIN_CSV), read_fairface_csv(folder / VAL_CSV)
    refuse_split_overlap(f"{folder} ({TRAIN_CSV} gives train and valid, {VAL_CSV} test)",
                         {TRAIN_CSV: train.files, VAL_CSV: val.files})
    return train, val


def _encode_column(table: CsvTable, name: str, vocabulary: tuple[str, ...]) -> torch.Tensor:
    index = {value: k for k, value in enumerate(vocabulary)}
    codes = []
    for row, value in enumerate(table.column(name)):
        if value not in index:
            raise DatasetError(
                f"{table.where(row)}: unknown {name} {value!r}; FairFace's values are "
                f"{', '.join(repr(v) for v in vocabulary)}"
            )
        codes.append(index[value])
    return torch.tensor(codes, dtype=torch.long)


def fairface_split_rows(
    num_train_rows: int, valid_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, valid rows) of fairface_label_train.csv: sorted int64, disjoint, seeded."""
    if not 0.0 <= valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    valid, train = split_rows(num_train_rows, (valid_fraction, 1.0 - valid_fraction), seed)
    return train, valid


class FairFaceDataset(torch.utils.data.Dataset):
    """One split of FairFace (see the module docstring).

    root: ``ROOT`` holding ``fairface/`` (or the fairface folder itself). split: train, valid
    (both from the train CSV) or test (the val CSV). ``load_image(i)`` -> uint8
    [3, image_size, image_size]; ``labels``: long [N] per label; ``files``: CSV file names.
    Raises DatasetError for a bad row or a missing image file (file and line).
    """

    def __init__(
        self, root: str | Path, split: str = "train", image_size: int = 178, *,
        valid_fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        self.folder = fairface_folder(root)
        self.split = split
        self.image_size = image_size
        train, val = read_fairface_tables(self.folder)
        source = val if split == "test" else train
        rows = np.arange(len(source.files), dtype=np.int64)
        if split != "test":
            train_rows, valid_rows = fairface_split_rows(len(train.files), valid_fraction, seed)
            _refuse_empty_split(train.table.path, {"train": train_rows, "valid": valid_rows},
                                valid_fraction)
            rows = train_rows if split == "train" else valid_rows
        self.files = [source.files[i] for i in rows]
        self.labels = {name: value[torch.from_numpy(rows)] for name, value in
                       source.labels.items()}
        self.label_info = fairface_label_info()
        self._check_images_exist(source.table, rows)

    def _check_images_exist(self, table: CsvTable, rows: np.ndarray) -> None:
        for file, row in zip(self.files, rows, strict=True):
            if not (self.folder / file).is_file():
                raise DatasetError(
                    f"{table.where(int(row))}: image file {self.folder / file} does not exist"
                )

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """Row ``index`` decoded and resized: uint8 [3, image_size, image_size]."""
        return load_square_image(self.folder / self.files[index], self.image_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.load_image(index), {name: value[index] for name, value in self.labels.items()}


def _refuse_empty_split(path: Path, parts: dict[str, np.ndarray], valid_fraction: float) -> None:
    for split, rows in parts.items():
        if not len(rows):
            raise DatasetError(
                f"{path}: split {split!r} has no rows (of its {sum(map(len, parts.values()))} "
                f"rows, valid takes {valid_fraction:.0%}); every split needs at least one"
            )


def fairface_available_labels(root: str | Path) -> dict[str, LabelInfo]:
    """The labels of a FairFace root, after validating both CSVs (no image is opened)."""
    read_fairface_tables(fairface_folder(root))
    return fairface_label_info()
