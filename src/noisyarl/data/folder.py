"""Images in a folder plus a CSV of labels, and the image/CSV helpers every loader shares.

Layout of a ``folder`` dataset (ROOT is what ``root`` names)::

    ROOT/images/<any/sub/path>.jpg|png ...
    ROOT/labels.csv      UTF-8, header "file,<label>,<label>,...[,split]"

``file`` is a relative path: relative to ROOT/images (``00000.png``) or, as most tools write
it, relative to ROOT, where the CSV lies (``images/00000.png``). The first row decides for the
whole file: ROOT/images/<file> when that exists (also when ROOT/<file> does), else ROOT/<file>
when that exists; ``FolderDataset.files_relative_to`` says which, and ``data-info`` prints
it. Absolute paths and ``..`` that climbs out of the folder are refused (the check is on the
text: symbolic links inside ROOT are followed).

Label kinds are declared by the caller (``{"smile": "binary", "age": "multiclass",
"x": "regression"}``) or inferred per column: 0/1 integers -> binary, other non-negative
integers up to ``MAX_INFERRED_CLASSES - 1`` -> multiclass (class ``k`` named ``"k"``),
other numbers -> regression (float, dim 1), any non-numeric value -> multiclass over the
sorted distinct strings. An optional ``split`` column assigns rows to splits: ``train``
(or ``training``), ``valid`` (or ``val``, ``validation``, ``dev``), ``test`` (or ``testing``),
in any case. Without it the rows are split 80/10/10, deterministically from ``seed``.
Every image is resized to a square ``image_size`` x ``image_size`` (no crop).

Refused as almost certainly mistakes (DatasetError naming the file): a file listed in two
splits (images of the test split seen in training inflate the figures), a file listed twice
in one split, and a split with no rows (a header-only CSV, or a ``split`` column without
``test`` rows).
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from noisyarl.data.base import SPLITS, DatasetError, LabelInfo, LabelKind

SYNTH_HINT = (
    "`noisyarl synth-faces OUT --format celeba|fairface` writes a generated stand-in in the "
    "CelebA or FairFace layout."
)

FOLDER_LAYOUT = """expected layout of a 'folder' dataset:
  ROOT/images/...            image files (jpg, png, ...), any sub-folders
  ROOT/labels.csv            UTF-8, header 'file,<label>,...' (file relative to ROOT/images,
                             or to ROOT: images/1.png), optional column 'split' with
                             train/valid/test (also val, validation, dev; training; testing)
This layout is for your own data.""" + "\n" + SYNTH_HINT

MAX_INFERRED_CLASSES = 100
SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "dev": "valid", "test": "test", "testing": "test"}
IMAGE_FOLDER = "images"
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
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
    """Decode the image file ``path`` fully into an 8-bit RGB PIL image.

    16-bit grey images (Pillow modes ``I;16*``, and ``I`` with values in 0..65535, e.g. a
    16-bit PNG) are scaled from 0..65535 to 0..255 (Pillow's own conversion would clip them
    to white); 48/64-bit RGB(A) PNGs already come in as 8-bit RGB(A). Raises DatasetError
    naming the file when it is missing, truncated, not an image, or of a mode whose value
    range is unknown (32-bit float ``F``, ``I`` outside 0..65535).
    """
    try:
        with Image.open(path) as image:
            image.load()  # the full decode, so that a truncated file fails here
            return _to_rgb(image, path)
    except FileNotFoundError as error:
        raise DatasetError(f"missing image file: {path}") from error
    except (OSError, SyntaxError, ValueError) as error:
        raise DatasetError(f"cannot decode image file {path}: {error}") from error


def _to_rgb(image: Image.Image, path: Path) -> Image.Image:
    if image.mode in SIXTEEN_BIT_MODES or image.mode == "I":
        return _grey_16_bit_to_rgb(np.asarray(image), path, image.mode)
    if image.mode == "F" or image.mode.startswith("I;"):
        raise DatasetError(
            f"cannot decode image file {path}: Pillow mode {image.mode!r} has no known value "
            "range; save it as an 8- or 16-bit image (PNG, JPEG)"
        )
    return image.convert("RGB")


def _grey_16_bit_to_rgb(values: np.ndarray, path: Path, mode: str) -> Image.Image:
    """Grey values 0..65535 as an RGB image of round(value / 257) (65535 / 255 = 257)."""
    if values.size and (int(values.min()) < 0 or int(values.max()) > 65535):
        raise DatasetError(
            f"cannot decode image file {path}: mode {mode!r} values span {int(values.min())}.."
            f"{int(values.max())}, outside the 16-bit range 0..65535"
        )
    grey = ((values.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2)))


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
    """Read a comma-separated UTF-8 file with a header line, checking columns and row widths.

    Blank lines are skipped. Raises DatasetError naming the file (and line) when it is not
    UTF-8, a required column is missing or a row has a different number of fields than the
    header.
    """
    require_file(path, layout_help)
    reader = csv.reader(io.StringIO(read_utf8_text(path), newline=""))
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


def read_utf8_text(path: Path) -> str:
    """The text of ``path`` (UTF-8, a leading byte-order mark dropped).

    Raises DatasetError naming the file and line of the first byte that is not UTF-8 (e.g.
    a CSV saved as latin-1 / Windows-1252), or when the file cannot be read.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise DatasetError(
            f"{path} line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the "
            "file as UTF-8 (e.g. 'CSV UTF-8' in a spreadsheet, or iconv -f latin1 -t utf-8)"
        ) from error


def relative_file(value: str, where: str, folder: str) -> str:
    """The file entry ``value`` as a normalised relative path (``a/./b.png`` -> ``a/b.png``).

    Raises DatasetError at ``where`` (file and line) for an empty entry, an absolute path or
    one whose ``..`` climbs out of ``folder`` (e.g. ``../../../../etc/passwd``): a label file
    only names files inside its dataset. The check is on the text; symbolic links are followed.
    """
    if "/" not in value and value not in ("", ".", ".."):
        return value  # a plain file name (the common case, e.g. every CelebA row)
    if not value:
        raise DatasetError(f"{where}: empty file name")
    normal = posixpath.normpath(value)
    if value.startswith("/") or normal == ".." or normal.startswith("../"):
        raise DatasetError(
            f"{where}: file {value!r} lies outside {folder}; file entries must be relative "
            "paths inside it (no leading '/', no '..' that climbs out)"
        )
    return normal


def refuse_split_overlap(
    source: str, split_files: dict[str, Sequence[str]], max_named: int = 3
) -> None:
    """DatasetError when one image file is in two splits (``split_files``: split -> files).

    The message says how many files each pair of splits shares and names a few. An image in
    both train and test makes the test figures look better than they are.
    """
    first_split: dict[str, str] = {}
    shared: dict[tuple[str, str], list[str]] = {}
    for split, files in split_files.items():
        for file in dict.fromkeys(files):
            first = first_split.setdefault(file, split)
            if first != split:
                shared.setdefault((first, split), []).append(file)
    if shared:
        parts = [f"{len(files)} file(s) in both {a} and {b} (e.g. {', '.join(files[:max_named])})"
                 for (a, b), files in shared.items()]
        raise DatasetError(
            f"{source}: the splits share image files: {'; '.join(parts)}; each image must be "
            "in one split only"
        )


def refuse_repeated_files(path: Path, files: Sequence[str], lines: Sequence[int]) -> None:
    """DatasetError when the label file ``path`` lists one image file on two lines."""
    if len(set(files)) == len(files):
        return
    first_line: dict[str, int] = {}
    repeats = []
    for file, line in zip(files, lines, strict=True):
        if file in first_line:
            repeats.append((file, first_line[file], line))
        first_line.setdefault(file, line)
    file, first, again = repeats[0]
    raise DatasetError(
        f"{path}: {len(repeats)} row(s) list an image file that an earlier row lists, e.g. "
        f"{file!r} on lines {first} and {again}; list each image once"
    )


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
    """Everything ``labels.csv`` says: files, label tensors (all rows) and the split of each row.

    files: the ``file`` entries, normalised and checked to stay inside the dataset.
    """

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
    """Parse ``ROOT/labels.csv``: label columns (declared or inferred kinds) and splits.

    Raises DatasetError naming the file (and line) for a bad row, a ``file`` outside the
    dataset, a file listed twice or in two splits, or a split without rows.
    """
    root = Path(root)
    require_file(root, FOLDER_LAYOUT, what="dataset root")
    table = read_csv_table(root / "labels.csv", ["file"], FOLDER_LAYOUT)
    if not table.rows:
        raise DatasetError(f"{table.path}: no rows after the header line, so the splits "
                           "train, valid and test have no rows")
    files = [relative_file(file, table.where(row), f"the dataset folder {root}")
             for row, file in enumerate(table.column("file"))]
    parts = _folder_split_rows(table, seed)
    _refuse_files_listed_twice(table, files, parts)
    label_columns = [name for name in table.header if name not in ("file", "split")]
    kinds = _resolve_kinds(table, label_columns, label_kinds or {})
    labels, label_info = {}, {}
    for name in label_columns:
        labels[name], label_info[name] = encode_label_column(table, name, kinds[name])
    return FolderLabels(table, files, labels, label_info, parts)


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


def split_of_value(value: str, where: str) -> str:
    """The split (train/valid/test) that a ``split`` cell names, aliases and case allowed."""
    split = SPLIT_ALIASES.get(value.strip().lower())
    if split is None:
        raise DatasetError(
            f"{where}: column 'split' must be one of {SPLITS} (or val, validation, dev, "
            f"training, testing; any case), got {value!r}"
        )
    return split


def _folder_split_rows(table: CsvTable, seed: int) -> dict[str, np.ndarray]:
    """split -> sorted row indices; DatasetError when a split gets no row."""
    if "split" not in table.header:
        parts = dict(zip(SPLITS, split_rows(len(table.rows), DEFAULT_SPLIT_FRACTIONS, seed),
                         strict=True))
        why = (f"{len(table.rows)} rows split 80/10/10 at random without a 'split' column; "
               "add rows or a 'split' column")
    else:
        names = [split_of_value(value, table.where(row))
                 for row, value in enumerate(table.column("split"))]
        parts = {split: np.array([row for row, name in enumerate(names) if name == split],
                                 dtype=np.int64) for split in SPLITS}
        why = "no row of the 'split' column names it"
    for split, rows in parts.items():
        if not len(rows):
            raise DatasetError(f"{table.path}: split {split!r} has no rows ({why}); every split "
                               "(train, valid, test) needs at least one")
    return parts


def _refuse_files_listed_twice(
    table: CsvTable, files: list[str], parts: dict[str, np.ndarray]
) -> None:
    """DatasetError for a file in two splits (named first: the worse case) or listed twice."""
    if len(set(files)) == len(files):
        return
    if "split" in table.header:
        refuse_split_overlap(str(table.path), {split: [files[row] for row in rows]
                                               for split, rows in parts.items()})
    refuse_repeated_files(table.path, files, table.line_numbers)


def files_relative_to(root: Path, first_file: str) -> str:
    """Where the ``file`` entries of a folder dataset lie: ``"ROOT/images"`` or ``"ROOT"``.

    Decided by the first row, for every row: ROOT/images/<file> when it exists (also when
    ROOT/<file> does), else ROOT/<file> when it exists (paths relative to labels.csv, like
    ``images/00000.png``), else ROOT/images (the missing file is then named as such).
    """
    if (root / IMAGE_FOLDER / first_file).is_file() or not (root / first_file).is_file():
        return f"ROOT/{IMAGE_FOLDER}"
    return "ROOT"


class FolderDataset(torch.utils.data.Dataset):
    """One split of a folder dataset (see the module docstring).

    ``load_image(i)`` decodes row ``i`` to uint8 [3, image_size, image_size];
    ``labels`` holds every label of the split (long [N] or float32 [N, 1]);
    ``label_info`` describes them. ``files_relative_to``: ``"ROOT/images"`` or ``"ROOT"``,
    where the ``file`` entries were found (``image_folder`` is that folder). Raises
    DatasetError for a bad row or a missing image.
    """

    def __init__(
        self, root: str | Path, split: str = "train", image_size: int = 64, *,
        label_kinds: dict[str, str] | None = None, seed: int = 0,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        parsed = read_folder_labels(root, label_kinds, seed)
        rows = parsed.split_rows[split]
        self.root = Path(root)
        self.files_relative_to = files_relative_to(self.root, parsed.files[0])
        self.image_folder = self.root / IMAGE_FOLDER if self.files_relative_to != "ROOT" \
            else self.root
        self.split = split
        self.image_size = image_size
        self.files = [parsed.files[i] for i in rows]
        self.labels = {name: value[torch.from_numpy(rows)] for name, value in
                       parsed.labels.items()}
        self.label_info = parsed.label_info
        self._check_images_exist(parsed.table, rows)

    def _check_images_exist(self, table: CsvTable, rows: np.ndarray) -> None:
        for file, row in zip(self.files, rows, strict=True):
            if not (self.image_folder / file).is_file():
                raise DatasetError(
                    f"{table.where(int(row))}: image file {self.image_folder / file} does not "
                    f"exist ('file' entries are taken relative to {self.files_relative_to} for "
                    f"every row, decided by the first row, {table.where(0)})"
                )

    def __len__(self) -> int:
        return len(self.files)

    def load_image(self, index: int) -> torch.Tensor:
        """Row ``index`` decoded and resized: uint8 [3, image_size, image_size]."""
        return load_square_image(self.image_folder / self.files[index], self.image_size)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.load_image(index), {name: value[index] for name, value in self.labels.items()}


def folder_label_info(
    root: str | Path, label_kinds: dict[str, str] | None = None
) -> dict[str, LabelInfo]:
    """The labels of a folder dataset, from ``labels.csv`` only (no image is opened)."""
    return read_folder_labels(root, label_kinds).label_info
