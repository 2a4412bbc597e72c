"""CelebA (aligned and cropped faces) in its published layout, through torchvision's parser.

:class:`CelebAFaces` subclasses :class:`torchvision.datasets.CelebA`. The stock md5 check is
replaced by a structural one (files present, rows well-formed and consistent across the five
text files), so both the real dataset and generated stand-ins load; nothing is ever downloaded.

Geometric transform (docs/method.md §2): centre crop to a square of side ``min(W, H)`` (178 px
for real CelebA's 178 x 218 images, top offset 20), then resize to ``image_size``.

Landmarks are normalised to the unit square of the cropped face with the pixel-centre
convention: a point at pixel index ``x`` of the original image becomes
``u = (x - crop_left + 0.5) / side`` (``y`` likewise with ``crop_top``). Resizing keeps ``u``
(in the resized image the point lies at pixel ``u * image_size - 0.5``), and a horizontal flip
maps ``u`` to exactly ``1 - u``. Points inside the crop lie in [0, 1].
"""

from __future__ import annotations

import warnings
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CelebA

from noisyarl.data.base import DatasetError, LabelInfo
from noisyarl.data.folder import (
    SYNTH_HINT,
    image_size_of,
    image_to_tensor,
    layout_error,
    open_rgb,
    refuse_repeated_files,
    refuse_split_overlap,
    relative_file,
    require_file,
    resize_square,
)

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs",
    "Big_Lips", "Big_Nose", "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows",
    "Chubby", "Double_Chin", "Eyeglasses", "Goatee", "Gray_Hair", "Heavy_Makeup",
    "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache", "Narrow_Eyes", "No_Beard",
    "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks", "Sideburns",
    "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat",
    "Wearing_Lipstick", "Wearing_Necklace", "Wearing_Necktie", "Young",
)  # fmt: skip

LANDMARK_NAMES: tuple[str, ...] = (
    "lefteye_x", "lefteye_y", "righteye_x", "righteye_y", "nose_x", "nose_y",
    "leftmouth_x", "leftmouth_y", "rightmouth_x", "rightmouth_y",
)  # fmt: skip

# A horizontal flip maps the point on the image's left to the right: swap the eyes and the
# mouth corners. flipped[:, i] = mirrored[:, LANDMARK_FLIP_PERMUTATION[i]].
LANDMARK_X_INDICES: tuple[int, ...] = (0, 2, 4, 6, 8)
LANDMARK_FLIP_PERMUTATION: tuple[int, ...] = (2, 3, 0, 1, 4, 5, 8, 9, 6, 7)

SPLIT_CODES = {"train": 0, "valid": 1, "test": 2}

ATTR_FILE = "list_attr_celeba.txt"
IDENTITY_FILE = "identity_CelebA.txt"
BBOX_FILE = "list_bbox_celeba.txt"
LANDMARKS_FILE = "list_landmarks_align_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
TEXT_FILES = (ATTR_FILE, IDENTITY_FILE, BBOX_FILE, LANDMARKS_FILE, PARTITION_FILE)
IMAGE_FOLDER = "img_align_celeba"

CELEBA_LAYOUT = f"""expected CelebA layout (ROOT is the --root folder):
  ROOT/celeba/{IMAGE_FOLDER}/000001.jpg ...   aligned & cropped faces (178x218 px JPEG)
  ROOT/celeba/{ATTR_FILE}             count line, 40 attribute names, rows of -1/1
  ROOT/celeba/{IDENTITY_FILE}              rows 'file person_id'
  ROOT/celeba/{BBOX_FILE}             count line, header, rows 'file x y w h'
  ROOT/celeba/{LANDMARKS_FILE}  count line, header, rows 'file' + 10 coordinates
  ROOT/celeba/{PARTITION_FILE}          rows 'file 0|1|2' (train/valid/test)
CelebA comes from https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html ("Align&Cropped Images"
img_align_celeba.zip and the Anno/ and Eval/ text files); unzip them into ROOT/celeba/.
{SYNTH_HINT}"""


# ---------------------------------------------------------------------------------------------
# Text files
# ---------------------------------------------------------------------------------------------


@dataclass
class Listing:
    """One CelebA text file: ``values[i]`` (int64) of image ``names[i]``, on line ``lines[i]``.

    header: the names on the header line (line ``header_line``; empty, 0 when there is none).
    """

    path: Path
    header: list[str]
    names: list[str]
    values: np.ndarray
    lines: list[int]
    header_line: int = 0

    def where(self, row: int) -> str:
        return f"{self.path} line {self.lines[row]}"


def read_listing(path: Path, num_values: int, has_header: bool, what: str) -> Listing:
    """Parse a whitespace-separated CelebA list: rows ``name v_1 .. v_num_values`` (integers).

    has_header: the file starts with a count line and a header line (attributes, bbox,
    landmarks). ``what`` names the values in error messages. Blank lines are skipped.
    Raises DatasetError naming the file and line of a malformed row or count.
    """
    require_file(path, CELEBA_LAYOUT)
    numbered = [(n, line) for n, line in enumerate(_read_lines(path), start=1) if line.strip()]
    header: list[str] = []
    header_line = 0
    if has_header:
        if len(numbered) < 2:
            raise layout_error(f"{path}: expected a count line and a header line", CELEBA_LAYOUT)
        (count_line, count_text), (header_line, header_text) = numbered[0], numbered[1]
        header = header_text.split()
        numbered = numbered[2:]
        _check_count(path, count_line, count_text.split(), len(numbered))
    rows = [line for _, line in numbered]
    parsed = _parse_rows_fast(rows, num_values)
    if parsed is None:
        parsed = _parse_rows_checked(path, numbered, num_values, what)
    names, values = parsed
    return Listing(path, header, names, values, [n for n, _ in numbered], header_line)


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise DatasetError(f"{path}: not a text file ({error})") from error


def _check_count(path: Path, line: int, parts: list[str], num_rows: int) -> None:
    if len(parts) != 1 or not parts[0].isdigit():
        raise DatasetError(f"{path} line {line}: expected the image count, got {' '.join(parts)!r}")
    if int(parts[0]) != num_rows:
        raise DatasetError(
            f"{path} line {line}: the count line says {int(parts[0])} images but the file has "
            f"{num_rows} rows"
        )


def _is_integer(token: str) -> bool:
    return token.lstrip("+-").isdigit()


def _parse_rows_fast(rows: list[str], num_values: int) -> tuple[list[str], np.ndarray] | None:
    """(names, int64 [rows, num_values]) of well-formed rows, or None to take the checked path.

    All tokens are split at once and laid on a grid of ``num_values + 1`` columns: any row with
    a missing or extra column shifts the grid, so that a number lands where a (non-numeric)
    image name is expected or a name where a number is: both send the file to the checked path,
    which names the line. Real CelebA (200k rows) parses in about a second this way.
    """
    width = num_values + 1
    tokens = " ".join(rows).split()
    if len(tokens) != len(rows) * width:
        return None
    names = tokens[0::width]
    if any(_is_integer(name) for name in names):
        return None
    del tokens[0::width]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # numpy warns, then stops, at a non-integer
            values = np.fromstring(" ".join(tokens), dtype=np.int64, sep=" ")
    except (ValueError, DeprecationWarning, AttributeError):  # AttributeError: no fromstring
        return None
    if values.size != len(rows) * num_values:
        return None
    return names, values.reshape(len(rows), num_values)


def _parse_rows_checked(
    path: Path, numbered: list[tuple[int, str]], num_values: int, what: str
) -> tuple[list[str], np.ndarray]:
    """Row-by-row parse; DatasetError names the line of a wrong column count or non-integer."""
    names, values = [], []
    for n, line in numbered:
        parts = line.split()
        if len(parts) != num_values + 1:
            raise DatasetError(
                f"{path} line {n}: expected {num_values + 1} columns (image file name + "
                f"{what}), got {len(parts)}"
            )
        bad = next((token for token in parts[1:] if not _is_integer(token)), None)
        if bad is not None:
            raise DatasetError(f"{path} line {n}: expected integers, got {bad!r}")
        names.append(parts[0])
        values.append([int(token) for token in parts[1:]])
    return names, np.array(values, dtype=np.int64).reshape(len(numbered), num_values)


@dataclass
class CelebATables:
    """The five CelebA text files, validated and aligned row by row (N images, file order).

    files: image file names. partition: int64 [N] 0/1/2. identity: int64 [N] person ids as
    written. bbox: int64 [N, 4]. landmarks: int64 [N, 10] px in ``LANDMARK_NAMES`` order.
    attr_names: the header of the attribute file. attributes: int64 [N, 40] in {0, 1}
    (the file's -1/1 mapped), columns in ``attr_names`` order. signed: the raw -1/1 table.
    """

    folder: Path
    files: list[str]
    partition: np.ndarray
    identity: np.ndarray
    bbox: np.ndarray
    landmarks: np.ndarray
    attr_names: tuple[str, ...]
    signed: np.ndarray
    listings: dict[str, Listing]

    @property
    def attributes(self) -> np.ndarray:
        return (self.signed + 1) // 2

    def rows_of_split(self, split: str) -> np.ndarray:
        """int64 indices (file order) of the rows in ``split`` (train/valid/test/all)."""
        if split == "all":
            return np.arange(len(self.files), dtype=np.int64)
        if split not in SPLIT_CODES:
            raise ValueError(f"split must be one of {(*SPLIT_CODES, 'all')}, got {split!r}")
        return np.flatnonzero(self.partition == SPLIT_CODES[split]).astype(np.int64)


def celeba_folder(root: str | Path) -> Path:
    """``ROOT/celeba``, checked to exist with its image folder (DatasetError otherwise)."""
    root = Path(root)
    require_file(root, CELEBA_LAYOUT, what="dataset root")
    folder = require_file(root / "celeba", CELEBA_LAYOUT, what="folder")
    require_file(folder / IMAGE_FOLDER, CELEBA_LAYOUT, what="image folder")
    return folder


def celeba_label_files(root: str | Path) -> list[Path]:
    """The five text files of a CelebA root (what defines its labels, for cache keys)."""
    return [Path(root) / "celeba" / name for name in TEXT_FILES]


def read_celeba_tables(root: str | Path) -> CelebATables:
    """Read and validate the five text files of ``ROOT/celeba`` (no image is opened).

    Checks: every file present; count lines match the rows; each row has the right number of
    integer columns; partition values 0/1/2; attribute values -1/1; the attribute header holds
    the 40 CelebA names once each; the landmark header is the standard one; all files list the
    same images in the same order; each image is listed once, in one split (an image in two
    splits would leak into the test), inside the image folder; no split is empty. Raises
    DatasetError naming the file and line.
    """
    folder = celeba_folder(root)
    for name in TEXT_FILES:
        require_file(folder / name, CELEBA_LAYOUT)
    partition = read_listing(folder / PARTITION_FILE, 1, False, "split 0/1/2")
    listings = {
        PARTITION_FILE: partition,
        IDENTITY_FILE: read_listing(folder / IDENTITY_FILE, 1, False, "person id"),
        BBOX_FILE: read_listing(folder / BBOX_FILE, 4, True, "x_1 y_1 width height"),
        LANDMARKS_FILE: read_listing(folder / LANDMARKS_FILE, 10, True, "10 landmark coordinates"),
        ATTR_FILE: read_listing(folder / ATTR_FILE, len(CELEBA_ATTRIBUTES), True,
                                "40 attributes"),
    }
    _check_values_in(partition, (0, 1, 2), "split codes 0 (train), 1 (valid) or 2 (test)")
    _check_partition(partition, folder / IMAGE_FOLDER)
    _check_values_in(listings[ATTR_FILE], (-1, 1), "attribute values -1 or 1")
    _check_attribute_header(listings[ATTR_FILE])
    _check_landmark_header(listings[LANDMARKS_FILE])
    for listing in listings.values():
        _check_same_images(partition, listing)
    return CelebATables(
        folder=folder, files=partition.names, partition=partition.values[:, 0],
        identity=listings[IDENTITY_FILE].values[:, 0], bbox=listings[BBOX_FILE].values,
        landmarks=listings[LANDMARKS_FILE].values,
        attr_names=tuple(listings[ATTR_FILE].header), signed=listings[ATTR_FILE].values,
        listings=listings,
    )


def _check_values_in(listing: Listing, allowed: tuple[int, ...], what: str) -> None:
    bad = ~np.isin(listing.values, allowed)
    if bad.any():
        row, column = (int(k) for k in np.argwhere(bad)[0])
        raise DatasetError(
            f"{listing.where(row)}: expected {what}, got {int(listing.values[row, column])} "
            f"in column {column + 2}"
        )


def _check_partition(partition: Listing, image_folder: Path) -> None:
    """Names inside the image folder, each once, in one split; every split has rows."""
    for row, name in enumerate(partition.names):
        relative_file(name, partition.where(row), f"the image folder {image_folder}")
    codes = partition.values[:, 0]
    if len(set(partition.names)) != len(partition.names):
        refuse_split_overlap(str(partition.path), {
            split: [partition.names[row] for row in np.flatnonzero(codes == code)]
            for split, code in SPLIT_CODES.items()})
        refuse_repeated_files(partition.path, partition.names, partition.lines)
    for split, code in SPLIT_CODES.items():
        if not np.any(codes == code):
            raise DatasetError(f"{partition.path}: split {split!r} (code {code}) has no rows; "
                               "every split (train, valid, test) needs at least one")


def _check_attribute_header(listing: Listing) -> None:
    where = f"{listing.path} line {listing.header_line}"
    unknown = [name for name in listing.header if name not in CELEBA_ATTRIBUTES]
    if unknown:
        raise DatasetError(
            f"{where}: unknown attribute name(s) {unknown} in the header; CelebA's 40 "
            f"attributes are {', '.join(CELEBA_ATTRIBUTES)}"
        )
    duplicated = sorted({name for name in listing.header if listing.header.count(name) > 1})
    missing = [name for name in CELEBA_ATTRIBUTES if name not in listing.header]
    if duplicated or missing:
        raise DatasetError(
            f"{where}: the header must name each of the 40 attributes once "
            f"(duplicated: {duplicated}, missing: {missing})"
        )


def _check_landmark_header(listing: Listing) -> None:
    if tuple(listing.header) != LANDMARK_NAMES:
        where = f"{listing.path} line {listing.header_line}"
        raise DatasetError(
            f"{where}: expected the landmark header {' '.join(LANDMARK_NAMES)}, "
            f"got {' '.join(listing.header)!r}"
        )


def _check_same_images(reference: Listing, listing: Listing) -> None:
    if len(listing.names) != len(reference.names):
        raise DatasetError(
            f"{listing.path}: {len(listing.names)} rows, but {reference.path} has "
            f"{len(reference.names)}; all five CelebA files list the same images"
        )
    if listing.names == reference.names:
        return
    for row, (expected, name) in enumerate(zip(reference.names, listing.names, strict=True)):
        if expected != name:
            raise DatasetError(
                f"{listing.where(row)}: image {name}, but {reference.where(row)} names "
                f"{expected}; all five CelebA files list the same images in the same order"
            )


# ---------------------------------------------------------------------------------------------
# Labels
# ---------------------------------------------------------------------------------------------


def centre_square_box(width: int, height: int) -> tuple[int, int, int]:
    """(left, top, side) in px of the centred square crop of a ``width`` x ``height`` image.

    Offsets are rounded like torchvision's CenterCrop: 178 x 218 -> (0, 20, 178).
    """
    side = min(width, height)
    return int(round((width - side) / 2.0)), int(round((height - side) / 2.0)), side


def landmarks_to_unit(landmarks_px: np.ndarray, width: int, height: int) -> np.ndarray:
    """Landmarks int [N, 10] px of ``width`` x ``height`` images -> float32 [N, 10] in the crop.

    ``u = (x - left + 0.5) / side`` (see the module docstring); independent of the output size.
    """
    left, top, side = centre_square_box(width, height)
    offsets = np.array([left, top] * (landmarks_px.shape[1] // 2), dtype=np.float64)
    return ((landmarks_px.astype(np.float64) - offsets + 0.5) / side).astype(np.float32)


def landmark_label_info() -> LabelInfo:
    """The ``landmarks`` label: 10 normalised coordinates, mirrored and swapped by a flip."""
    return LabelInfo(kind="regression", dim=len(LANDMARK_NAMES), x_indices=LANDMARK_X_INDICES,
                     flip_permutation=LANDMARK_FLIP_PERMUTATION)


def celeba_label_info(tables: CelebATables) -> dict[str, LabelInfo]:
    """40 binary attributes (by name), ``landmarks`` (regression, 10) and ``identity``.

    identity: multiclass over the distinct person ids of the whole file; class ``k`` is the
    k-th smallest id, and ``class_names[k]`` is that id as written.
    """
    info = {name: LabelInfo(kind="binary", num_classes=2, class_names=(f"not {name}", name))
            for name in tables.attr_names}
    info["landmarks"] = landmark_label_info()
    person_ids = np.unique(tables.identity)
    info["identity"] = LabelInfo(kind="multiclass", num_classes=len(person_ids),
                                 class_names=tuple(str(int(i)) for i in person_ids))
    return info


def celeba_labels(
    tables: CelebATables, rows: np.ndarray, image_width: int, image_height: int
) -> dict[str, torch.Tensor]:
    """Label tensors of ``rows``: attributes long [n] 0/1, landmarks float32 [n, 10] in the
    unit crop square, identity long [n] (index into the sorted distinct person ids)."""
    attributes = tables.attributes[rows]
    labels = {name: torch.from_numpy(attributes[:, k].copy())
              for k, name in enumerate(tables.attr_names)}
    unit = landmarks_to_unit(tables.landmarks[rows], image_width, image_height)
    labels["landmarks"] = torch.from_numpy(unit)
    person_index = np.searchsorted(np.unique(tables.identity), tables.identity[rows])
    labels["identity"] = torch.from_numpy(person_index.astype(np.int64))
    return labels


# ---------------------------------------------------------------------------------------------
# The dataset
# ---------------------------------------------------------------------------------------------

_CSV = namedtuple("_CSV", ["header", "index", "data"])  # torchvision's CelebA CSV record


class CelebAFaces(CelebA):
    """One CelebA split: centre-cropped square faces and all labels.

    root: the folder that contains ``celeba/``. split: train/valid/test (from
    list_eval_partition.txt) or all. image_size: side of the output square in px.
    ``load_image(i)`` -> uint8 [3, image_size, image_size]; ``labels`` (every row of the split)
    and ``label_info`` as in :func:`celeba_labels` / :func:`celeba_label_info`;
    ``__getitem__(i)`` -> (image, {label: value}). All images must share one size (real
    CelebA: 178 x 218); the first image's size is read at construction.
    """

    def __init__(self, root: str | Path, split: str = "train", image_size: int = 178) -> None:
        self._tables: CelebATables | None = None
        # split="all": torchvision's own row selection fails for a split of exactly one row.
        super().__init__(str(root), split="all", target_type=[], download=False)
        tables = self._require_tables()
        rows = tables.rows_of_split(split)
        self.split = split
        self.image_size = image_size
        self.filename = [tables.files[i] for i in rows]
        select = torch.from_numpy(rows)
        self.attr, self.identity = self.attr[select], self.identity[select]
        self.bbox, self.landmarks_align = self.bbox[select], self.landmarks_align[select]
        self._check_images_exist(tables.listings[PARTITION_FILE], rows)
        self.source_size = self._first_image_size()
        self.labels = celeba_labels(tables, rows, *self.source_size)
        self.label_info = celeba_label_info(tables)

    def _check_integrity(self) -> bool:
        """Structural check in place of torchvision's md5 check; raises DatasetError."""
        self._tables = read_celeba_tables(self.root)
        return True

    def download(self) -> None:
        raise DatasetError("CelebA is never downloaded here.\n" + CELEBA_LAYOUT)

    def _load_csv(self, filename: str, header: int | None = None) -> _CSV:
        """torchvision's record for ``filename``, from the already validated tables."""
        listing = self._require_tables().listings[filename]
        return _CSV(listing.header, listing.names, torch.from_numpy(listing.values))

    def _require_tables(self) -> CelebATables:
        assert self._tables is not None, "_check_integrity() runs first"
        return self._tables

    def _image_path(self, index: int) -> Path:
        return Path(self.root) / self.base_folder / IMAGE_FOLDER / self.filename[index]

    def _check_images_exist(self, partition: Listing, rows: np.ndarray) -> None:
        for index, row in enumerate(rows):
            if not self._image_path(index).is_file():
                raise DatasetError(
                    f"{partition.where(int(row))}: image file {self._image_path(index)} "
                    "does not exist"
                )

    def _first_image_size(self) -> tuple[int, int]:
        if not self.filename:
            return (self.image_size, self.image_size)
        return image_size_of(self._image_path(0))

    def load_image(self, index: int) -> torch.Tensor:
        """Row ``index`` centre-cropped and resized: uint8 [3, image_size, image_size]."""
        path = self._image_path(index)
        image = open_rgb(path)
        if image.size != self.source_size:
            raise DatasetError(
                f"image file {path} is {image.size[0]}x{image.size[1]} px, but "
                f"{self.filename[0]} is {self.source_size[0]}x{self.source_size[1]}; all "
                "CelebA images must share one size (the landmarks are normalised by it)"
            )
        left, top, side = centre_square_box(*image.size)
        square = image.crop((left, top, left + side, top + side))
        return image_to_tensor(resize_square(square, self.image_size))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.load_image(index), {name: value[index] for name, value in self.labels.items()}

    def __len__(self) -> int:
        return len(self.filename)


def celeba_available_labels(root: str | Path) -> dict[str, LabelInfo]:
    """The labels of a CelebA root, from its text files only (no image is opened)."""
    return celeba_label_info(read_celeba_tables(root))
