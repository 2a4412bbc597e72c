"""Images in a folder plus a CSV of labels, and the image/CSV helpers every loader shares.

Layout of a ``folder`` dataset (ROOT is what ``root`` names)::

    ROOT/images/<any/sub/path>.jpg|png ...
    ROOT/labels.csv      header "file,<label>,<label>,..."; ``file`` is relative to ROOT/images

Label kinds are declared by the caller (``{"smile": "binary", "age": "multiclass",
"x": "regression"}``) or inferred per column: 0/1 integers -> binary, other non-negative
integers up to ``MAX_INFERRED_CLASSES - 1`` -> multiclass (class ``k`` named ``"k"``),
other numbers -> regression (float, dim 1), any non-numeric value -> multiclass over the
sorted distinct strings. An optional ``split`` column (train/valid/test) assigns rows to
splits; without it the rows are split 80/10/10, deterministically from ``seed``.
Every image is resized to a square ``image_size`` x ``image_size`` (no crop).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from noisyarl.data.base import DatasetError, LabelInfo, LabelKind

SYNTH_HINT = (
    "`noisyarl synth-faces OUT --format celeba|fairface` writes a generated stand-in in the "
    "CelebA or FairFace layout."
)

FOLDER_LAYOUT = """expected layout of a 'folder' dataset:
  ROOT/images/...            image files (jpg, png, ...), any sub-folders
  ROOT/labels.csv            header 'file,<label>,...' (file relative to ROOT/images),
                             optional column 'split' with train/valid/test
This layout is for your own data.""" + "\n" + SYNTH_HINT

MAX_INFERRED_CLASSES = 100
SPLIT_NAMES = ("train", "valid", "test")
DEFAULT_SPLIT_FRACTIONS = (0.8, 0.1, 0.1)


# ---------------------------------------------------------------------------------------------
# Shared helpers: errors, images, CSV files
# ---------------------------------------------------------------------------------------------


def layout_error(message: str, layout_help: str) -> DatasetError:
    """A :class:`DatasetError` whose message is ``message`` followed by the expected layout."""
    return DatasetError(f"{message}\n{layout_help}")


def require_file(path: Path, layout_help: str, what: str = "file") -> Path:
    """``path`` if it exists, else a DatasetError naming it and showing ``layout_help``."""
    if not path.exists():
        raise layout_error(f"missing {what}: {path}", layout_help)
    return path


def open_rgb(path: Path) -> Image.Image:
    """Decode the image file ``path`` fully into an RGB PIL image.

    Raises DatasetError naming the file when it is missing, truncated or not an image.
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")  # convert() forces the full decode
    except FileNotFoundError as error:
        raise DatasetError(f"missing image file: {path}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot decode image file {path}: {error}") from error


def image_size_of(path: Path) -> tuple[int, int]:
    """(width, height) in px of the image file ``path``, reading only its header."""
    try:
        with Image.open(path) as image:
            return image.size
    except FileNotFoundError as error:
        raise DatasetError(f"missing image file: {path}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot read image file {path}: {error}") from error


def resize_square(image: Image.Image, size: int) -> Image.Image:
    """``image`` resized to ``size`` x ``size`` px (bilinear, antialiased); unchanged if equal."""
    if image.size == (size, size):
        return image
    return image.resize((size, size), Image.Resampling.BILINEAR)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 tensor [3, H, W] (values 0..255)."""
    array = np.asarray(image, dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def load_square_image(path: Path, size: int) -> torch.Tensor:
    """The image file ``path`` decoded and resized to uint8 [3, size, size]."""
    return image_to_tensor(resize_square(open_rgb(path), size))


@dataclass
class CsvTable:
    """A CSV file read as text: ``rows[i]`` came from line ``line_numbers[i]`` (1-based)."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    line_numbers: list[int]

    def column(self, name: str) -> list[str]:
        index = self.header.index(name)
        return [row[index] for row in self.rows]

    def where(self, row_index: int) -> str:
        """``"<path> line <n>"`` for the row ``row_index``, for error messages."""
        return f"{self.path} line {self.line_numbers[row_index]}"


def read_csv_table(path: Path, required_columns: Sequence[str], layout_help: str) -> CsvTable:
    """Read a comma-separated file with a header line, checking columns and row widths.

    Blank lines are skipped. Raises DatasetError naming the file (and line) when a required
    column is missing or a row has a different number of fields than the header.
    """
    require_file(path, layout_help)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        missing = [name for name in required_columns if name not in header]
        if missing:
            raise layout_error(
                f"{path} line 1: header {header} lacks the column(s) {missing}", layout_help
            )
        rows, line_numbers = [], []
        for row in reader:
            if not any(field.strip() for field in row):
                continue
            if len(row) != len(header):
                raise DatasetError(
                    f"{path} line {reader.line_num}: expected {len(header)} comma-separated "
                    f"fields ({','.join(header)}), got {len(row)}"
                )
            rows.append([field.strip() for field in row])
            line_numbers.append(reader.line_num)
    return CsvTable(path, header, rows, line_numbers)


def split_rows(num_rows: int, fractions: Sequence[float], seed: int) -> list[np.ndarray]:
    """Deterministic random partition of ``range(num_rows)`` by ``fractions`` (sorted rows).

    Returns one sorted int64 index array per fraction; sizes are rounded, the last part
    takes the remainder. The same (num_rows, fractions, seed) always gives the same parts.
    """
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_rows, generator=generator).numpy()
    parts, start = [], 0
    for k, fraction in enumerate(fractions):
        end = num_rows if k == len(fractions) - 1 else start + int(round(fraction * num_rows))
        parts.append(np.sort(order[start:end]).astype(np.int64))
        start = end
    return parts


# ---------------------------------------------------------------------------------------------
# Label columns: kind inference and encoding
# ---------------------------------------------------------------------------------------------


def _parse_numbers(values: list[str]) -> np.ndarray | None:
    """``values`` as float64 [N], or None when any of them is not a number."""
    try:
        return np.array([float(value) for value in values], dtype=np.float64)
    except ValueError:
        return None


def infer_label_kind(values: list[str]) -> LabelKind:
    """The kind of a CSV column from its text values (see the module docstring)."""
    numbers = _parse_numbers(values)
    if numbers is None:
        return "multiclass"
    integral = bool(np.all(np.isfinite(numbers))) and bool(np.all(numbers == np.round(numbers)))
    if integral and set(np.unique(numbers)) <= {0.0, 1.0}:
        return "binary"
    if integral and numbers.min() >= 0 and numbers.max() < MAX_INFERRED_CLASSES:
        return "multiclass"
    return "regression"


def encode_label_column(
    table: CsvTable, name: str, kind: LabelKind
) -> tuple[torch.Tensor, LabelInfo]:
    """The column ``name`` of ``table`` as a label tensor and its :class:`LabelInfo`.

    binary/multiclass: long [N]; integer columns keep their values (classes named by their
    number), text columns become indices into the sorted distinct strings. regression:
    float32 [N, 1]. Raises DatasetError naming the file and line of a value that does not fit.
    """
    values = table.column(name)
    numbers = _parse_numbers(values)
    if kind == "regression":
        if numbers is None:
            raise _not_a_number(table, name, values)
        return torch.from_numpy(numbers.astype(np.float32)).reshape(-1, 1), LabelInfo(
            kind="regression", dim=1
        )
    if numbers is None:
        return _encode_text_classes(table, name, values, kind)
    return _encode_integer_classes(table, name, values, numbers, kind)


def _encode_text_classes(
    table: CsvTable, name: str, values: list[str], kind: LabelKind
) -> tuple[torch.Tensor, LabelInfo]:
    class_names = tuple(sorted(set(values)))
    if kind == "binary" and len(class_names) > 2:
        raise DatasetError(
            f"{table.path}: column {name!r} is declared binary but holds {len(class_names)} "
            f"distinct values {list(class_names)[:5]}..."
        )
    index = {value: k for k, value in enumerate(class_names)}
    labels = torch.tensor([index[value] for value in values], dtype=torch.long)
    info = LabelInfo(kind=kind, num_classes=max(len(class_names), 2 if kind == "binary" else 1),
                     class_names=class_names)
    return labels, info


def _encode_integer_classes(
    table: CsvTable, name: str, values: list[str], numbers: np.ndarray, kind: LabelKind
) -> tuple[torch.Tensor, LabelInfo]:
    largest = 1 if kind == "binary" else None

    def fits(value: float) -> bool:
        return value == round(value) and value >= 0 and (largest is None or value <= largest)

    what = "0 or 1" if kind == "binary" else "a non-negative integer class index"
    for row, value in enumerate(numbers):
        if not fits(float(value)):
            raise DatasetError(
                f"{table.where(row)}: column {name!r} ({kind}) needs {what}, got {values[row]!r}"
            )
    num_classes = 2 if kind == "binary" else int(numbers.max()) + 1 if len(numbers) else 0
    info = LabelInfo(kind=kind, num_classes=num_classes,
                     class_names=tuple(str(k) for k in range(num_classes)))
    return torch.from_numpy(numbers.astype(np.int64)), info


def _not_a_number(table: CsvTable, name: str, values: list[str]) -> DatasetError:
    row = next(k for k, value in enumerate(values) if _parse_numbers([value]) is None)
    return DatasetError(
        f"{table.where(row)}: column {name!r} (regression) needs a number, got {values[row]!r}"
    )


# ---------------------------------------------------------------------------------------------
# The folder dataset
# ---------------------------------------------------------------------------------------------


@dataclass
class FolderLabels:
    """Everything ``labels.csv`` says: files, label tensors (all rows) and the split of each row."""

    table: CsvTable
    files: list[str]
    labels: dict[str, torch.Tensor]
    label_info: dict[str, LabelInfo]
    split_rows: dict[str, np.ndarray]


def folder_label_files(root: str | Path) -> list[Path]:
    """The text files whose content defines a folder dataset's labels (for cache keys)."""
    return [Path(root) / "labels.csv"]


def read_folder_labels(
    root: str | Path, label_kinds: dict[str, str] | None = None, seed: int = 0
) -> FolderLabels:
    """Parse ``ROOT/labels.csv``: label columns (declared or inferred kinds) and splits."""
    root = Path(root)
    require_file(root, FOLDER_LAYOUT, what="dataset root")
    table = read_csv_table(root / "labels.csv", ["file"], FOLDER_LAYOUT)
    label_columns = [name for name in table.header if name not in ("file", "split")]
    kinds = _resolve_kinds(table, label_columns, label_kinds or {})
    labels, label_info = {}, {}
    for name in label_columns:
        labels[name], label_info[name] = encode_label_column(table, name, kinds[name])
    return FolderLabels(table, table.column("file"), labels, label_info,
                        _folder_split_rows(table, seed))


def _resolve_kinds(
    table: CsvTable, columns: list[str], declared: dict[str, str]
) -> dict[str, LabelKind]:
    unknown = sorted(set(declared) - set(columns))
    if unknown:
        raise DatasetError(
            f"{table.path}: declared label(s) {unknown} are not columns of the file "
            f"(label columns: {columns})"
        )
    kinds: dict[str, LabelKind] = {}
    for name in columns:
        kind = declared.get(name) or infer_label_kind(table.column(name))
        if kind not in ("binary", "multiclass", "regression"):
            raise ValueError(f"label kind of {name!r} must be binary|multiclass|regression, "
                             f"got {kind!r}")
        kinds[name] = kind  # type: ignore[assignment]
    return kinds


def _folder_split_rows(table: CsvTable, seed: int) -> dict[str, np.ndarray]:
    if "split" not in table.header:
        parts = split_rows(len(table.rows), DEFAULT_SPLIT_FRACTIONS, seed)
        return dict(zip(SPLIT_NAMES, parts, strict=True))
    split_of_row = table.column("split")
    for row, split in enumerate(split_of_row):
        if split not in SPLIT_NAMES:
            raise DatasetError(
                f"{table.where(row)}: column 'split' must be one of {SPLIT_NAMES}, got {split!r}"
            )
    return {
        split: np.array([row for row, name in enumerate(split_of_row) if name == split],
                        dtype=np.int64)
        for split in SPLIT_NAMES
    }


class FolderDataset(torch.utils.data.Dataset):
    """One split of a folder dataset (see the module docstring).

    ``load_image(i)`` decodes row ``i`` to uint8 [3, image_size, image_size];
    ``labels`` holds every label of the split (long [N] or float32 [N, 1]);
    ``label_info`` describes them. Raises DatasetError for a bad row or a missing image.
    """

    def __init__(
        self, root: str | Path, split: str = "train", image_size: int = 64, *,
        label_kinds: dict[str, str] | None = None, seed: int = 0,
    ) -> None:
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {SPLIT_NAMES}, got {split!r}")
        parsed = read_folder_labels(root, label_kinds, seed)
        rows = parsed.split_rows[split]
        self.root = Path(root)
        self.split = split
        self.image_size = image_size
        self.files = [parsed.files[i] for i in rows]
        self.labels = {name: value[torch.from_numpy(rows)] for name, value in
                       parsed.labels.items()}
        self.label_info = parsed.label_info
        self._check_images_exist(parsed.table, rows)

    def _check_images_exist(self, table: CsvTable, rows: np.ndarray) -> None:
        for file, row in zip(self.files, rows, strict=True):
            if not (self.root / "images" / file).is_file():
                raise DatasetError(
                    f"{table.where(int(row))}: image file {self.root / 'images' / file} "
                    "does not exist"
                )

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """Row ``index`` decoded and resized: uint8 [3, image_size, image_size]."""
        return load_square_image(self.root / "images" / self.files[index], self.image_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.load_image(index), {name: value[index] for name, value in self.labels.items()}


def folder_label_info(
    root: str | Path, label_kinds: dict[str, str] | None = None
) -> dict[str, LabelInfo]:
    """The labels of a folder dataset, from ``labels.csv`` only (no image is opened)."""
    return read_folder_labels(root, label_kinds).label_info
