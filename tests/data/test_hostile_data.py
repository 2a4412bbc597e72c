"""Bad or crafted data never runs code, never reads outside the dataset, never decodes wrong.

Every refusal is one ``error:`` line from the CLI (exit status 2) naming the file, and
nothing is written: no marker of a crafted pickle, no cache file of a refused dataset.
"""

from __future__ import annotations

import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisyarl.cli import main
from noisyarl.data.base import DatasetError
from noisyarl.data.celeba import CelebAFaces
from noisyarl.data.folder import FolderDataset, open_rgb
from noisyarl.data.registry import available_labels, describe_dataset, load_splits

CLASS_NAMES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
CIFAR_FILES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]


def cli_error(argv: list[str], capsys) -> str:
    """Run the CLI; check it exits 2 with exactly one ``error:`` line, and return that line."""
    status = main(argv)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert status == 2 and out == ""
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------------------------
# CIFAR-10: crafted pickles are refused before they run; real-format pickles load
# ---------------------------------------------------------------------------------------------


class Python2StylePickler(pickle._Pickler):
    """Writes str and bytes as Python 2 byte strings (BINSTRING), as the real CIFAR files are."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_byte_string(self, obj: str | bytes) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[str] = save_byte_string
    dispatch[bytes] = save_byte_string


def dump(path: Path, entry: object, style: str | int) -> None:
    """Pickle ``entry`` like the real release (``"python2"``) or at a Python 3 protocol."""
    if style == "python2":
        with open(path, "wb") as handle:
            Python2StylePickler(handle, protocol=2).dump(entry)
        # Python 2's numpy named its reconstruction function numpy.core.multiarray.
        path.write_bytes(path.read_bytes().replace(b"numpy._core.multiarray\n",
                                                   b"numpy.core.multiarray\n"))
    else:
        path.write_bytes(pickle.dumps(entry, protocol=int(style)))


def write_cifar(root: Path, style: str | int = 4, per_batch: int = 10) -> dict[str, np.ndarray]:
    """ROOT/cifar-10-batches-py with ``per_batch`` random images per batch; {file: data}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    written = {}
    for name in CIFAR_FILES:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=per_batch).tolist()
        dump(folder / name, {"batch_label": name, "data": data, "labels": labels,
                             "filenames": [f"{name}_{k}.png" for k in range(per_batch)]}, style)
        written[name] = data
    dump(folder / "batches.meta", {"label_names": CLASS_NAMES, "num_cases_per_batch": per_batch,
                                   "num_vis": 3072}, style)
    return written


class ShellCommand:
    """Unpickling this runs ``os.system(command)``."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class PythonCode:
    """Unpickling this runs ``exec(code)``."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return exec, (self.code,)


def payloads(marker: Path) -> dict[str, object]:
    return {"os.system": ShellCommand(f"touch {marker}"),
            "exec": PythonCode(f"open({str(marker)!r}, 'w').close()")}


@pytest.mark.parametrize("payload", ["os.system", "exec"])
@pytest.mark.parametrize("target", ["batches.meta", "data_batch_3", "test_batch"])
def test_crafted_cifar_pickle_is_refused_before_it_runs(tmp_path, capsys, payload, target):
    root, marker = tmp_path / "root", tmp_path / "MARKER"
    write_cifar(root)
    crafted = root / "cifar-10-batches-py" / target
    entry = {"data": payloads(marker)[payload], "labels": [0]}
    crafted.write_bytes(pickle.dumps(entry if target != "batches.meta" else
                                     {"label_names": payloads(marker)[payload]}))
    line = cli_error(["data-info", "--dataset", "cifar10", "--root", str(root)], capsys)
    assert str(crafted) in line and "refused to unpickle the global" in line
    assert ("system" if payload == "os.system" else "exec") in line
    assert not marker.exists()
    with pytest.raises(DatasetError, match="refused to unpickle"):
        load_splits("cifar10", root, 32, cache_dir=tmp_path / "cache")  # what `run` calls
    assert not marker.exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("style", ["python2", 2, 4, 5])
def test_real_format_cifar_pickles_still_load(tmp_path, style):
    written = write_cifar(tmp_path, style)
    splits = load_splits("cifar10", tmp_path, 32)
    assert {name: len(split) for name, split in splits.items()} == {"train": 45, "valid": 5,
                                                                    "test": 10}
    expected = torch.from_numpy(written["test_batch"].reshape(-1, 3, 32, 32))
    assert torch.equal(splits["test"].images, expected)
    assert available_labels("cifar10", tmp_path)["label"].class_names == tuple(CLASS_NAMES)


def test_generated_cifar_loads_through_the_restricted_unpickler(tiny_cifar_root):
    with open(tiny_cifar_root / "cifar-10-batches-py" / "test_batch", "rb") as handle:
        written = pickle.load(handle)  # our own generator's file: trusted here
    test = load_splits("cifar10", tiny_cifar_root, 32, splits=("test",))["test"]
    assert torch.equal(test.images, torch.from_numpy(written["data"].reshape(-1, 3, 32, 32)))
    assert test.labels["label"].tolist() == written["labels"]


def test_cifar_labels_outside_the_classes_and_empty_test_batch(tmp_path, capsys):
    write_cifar(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "test_batch"
    dump(path, {"data": np.zeros((2, 3072), np.uint8), "labels": [3, 10]}, 4)
    line = cli_error(["data-info", "--dataset", "cifar10", "--root", str(tmp_path)], capsys)
    assert str(path) in line and "label 10 of image 1 is not a class index 0..9" in line
    dump(path, {"data": np.zeros((0, 3072), np.uint8), "labels": []}, 4)
    line = cli_error(["data-info", "--dataset", "cifar10", "--root", str(tmp_path)], capsys)
    assert "split 'test' has no rows" in line


# ---------------------------------------------------------------------------------------------
# Folder datasets: helpers
# ---------------------------------------------------------------------------------------------


def write_png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), value, dtype=np.uint8)).save(path)


def write_folder(root: Path, rows: list[str], header: str = "file,smile,split",
                 encoding: str = "utf-8") -> Path:
    """ROOT/images/<k>.png for k < 12, and ROOT/labels.csv of ``header`` and ``rows``."""
    for k in range(12):
        write_png(root / "images" / f"{k}.png", 20 * k)
    path = root / "labels.csv"
    path.write_bytes("\n".join([header, *rows, ""]).encode(encoding))
    return path


def standard_rows(prefix: str = "", splits=("train", "valid", "test")) -> list[str]:
    return [f"{prefix}{k}.png,{k % 2},{splits[k % 3]}" for k in range(12)]


def folder_error(root: Path, capsys) -> str:
    return cli_error(["data-info", "--dataset", "folder", "--root", str(root)], capsys)


# ---------------------------------------------------------------------------------------------
# File entries that leave the dataset
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ["../../../../etc/passwd", "/etc/passwd", "sub/../../x.png"])
def test_folder_file_outside_the_dataset_is_refused(tmp_path, capsys, entry):
    rows = standard_rows()
    rows[3] = f"{entry},1,train"  # line 5
    path = write_folder(tmp_path, rows)
    line = folder_error(tmp_path, capsys)
    assert f"{path} line 5: file {entry!r} lies outside" in line
    with pytest.raises(DatasetError, match="lies outside"):
        load_splits("folder", tmp_path, 8, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_fairface_entry_outside_the_dataset_is_refused(fairface_copy, capsys):
    csv = fairface_copy / "fairface" / "fairface_label_val.csv"
    lines = csv.read_text().splitlines()
    lines[2] = "../../secret.jpg," + lines[2].split(",", 1)[1]
    csv.write_text("\n".join(lines) + "\n")
    line = cli_error(["data-info", "--dataset", "fairface", "--root", str(fairface_copy)], capsys)
    assert f"{csv} line 3: file '../../secret.jpg' lies outside" in line


def test_celeba_entry_outside_the_dataset_is_refused(celeba_copy, capsys):
    partition = celeba_copy / "celeba" / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    lines[1] = "../../../etc/passwd 0"
    partition.write_text("\n".join(lines) + "\n")
    line = cli_error(["data-info", "--dataset", "celeba", "--root", str(celeba_copy)], capsys)
    assert f"{partition} line 2: file '../../../etc/passwd' lies outside" in line


# ---------------------------------------------------------------------------------------------
# 16-bit images decode to their values, not to white
# ---------------------------------------------------------------------------------------------


def gradient_16_bit(height: int = 8, width: int = 8) -> np.ndarray:
    return (np.arange(height * width, dtype=np.uint32) * 1031 % 65536).reshape(
        height, width).astype(np.uint16)


@pytest.mark.parametrize(("suffix", "dtype"), [(".png", "<u2"), (".tif", ">u2"),
                                               (".tif", "int32")])
def test_16_bit_grey_images_are_scaled_not_clipped(tmp_path, suffix, dtype):
    values = gradient_16_bit()
    path = tmp_path / f"grey{suffix}"
    Image.fromarray(values.astype(dtype)).save(path)
    decoded = np.asarray(open_rgb(path))
    assert decoded.shape == (8, 8, 3) and decoded.dtype == np.uint8
    for channel in range(3):
        assert np.array_equal(decoded[..., channel], np.rint(values / 257.0).astype(np.uint8))


def test_16_bit_png_in_a_folder_dataset_decodes_to_its_values(tmp_path):
    write_folder(tmp_path, standard_rows())
    values = gradient_16_bit()
    Image.fromarray(values).save(tmp_path / "images" / "0.png")  # row 0, split train
    assert Image.open(tmp_path / "images" / "0.png").mode == "I;16"
    train = load_splits("folder", tmp_path, 8, splits=("train",))["train"]
    expected = torch.from_numpy(np.rint(values / 257.0).astype(np.uint8))
    assert torch.equal(train.images[0], expected.expand(3, 8, 8))


def test_16_bit_png_in_the_celeba_layout_decodes_to_its_values(celeba_copy):
    dataset = CelebAFaces(celeba_copy, "train", image_size=40)
    values = gradient_16_bit(*dataset.source_size[::-1])  # 40 x 49 px, like its neighbours
    path = dataset._image_path(0)
    Image.fromarray(values).save(path, format="PNG")  # a PNG under CelebA's .jpg name
    top = 4  # the centre crop of 40 x 49 px starts at row 4
    expected = np.rint(values[top:top + 40] / 257.0).astype(np.uint8)
    assert torch.equal(dataset.load_image(0), torch.from_numpy(expected).expand(3, 40, 40))


def test_float_images_are_refused_by_name(tmp_path):
    path = tmp_path / "depth.tif"
    Image.fromarray(np.ones((4, 4), np.float32)).save(path)
    with pytest.raises(DatasetError, match=r"depth\.tif: Pillow mode 'F' has no known value"):
        open_rgb(path)


# ---------------------------------------------------------------------------------------------
# Bring-your-own folder data: split names, paths relative to the CSV, encodings
# ---------------------------------------------------------------------------------------------


def test_split_aliases_are_accepted(tmp_path):
    aliases = ["Training", " val ", "TEST", "train", "Validation", "testing", "train", "dev",
               "test", "train", "valid", "test"]
    write_folder(tmp_path, [f"{k}.png,{k % 2},{aliases[k]}" for k in range(12)])
    splits = load_splits("folder", tmp_path, 8)
    expected_rows = {"train": [0, 3, 6, 9], "valid": [1, 4, 7, 10], "test": [2, 5, 8, 11]}
    for name, rows in expected_rows.items():
        assert splits[name].images[:, 0, 0, 0].tolist() == [20 * k for k in rows]


def test_unknown_split_lists_the_accepted_values(tmp_path, capsys):
    rows = standard_rows()
    rows[0] = "0.png,0,holdout"
    path = write_folder(tmp_path, rows)
    line = folder_error(tmp_path, capsys)
    assert f"{path} line 2: column 'split' must be one of" in line and "validation" in line


def test_file_relative_to_the_csv_is_found_and_reported(tmp_path, capsys):
    write_folder(tmp_path, standard_rows(prefix="images/"))
    dataset = FolderDataset(tmp_path, "test", 8)
    assert dataset.files_relative_to == "ROOT"
    assert dataset.load_image(0)[0, 0, 0].item() == 40  # row 2 is images/2.png
    assert main(["data-info", "--dataset", "folder", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"'file' entries of labels.csv are relative to ROOT ({tmp_path})\n" in out
    assert "splits: train 4, valid 4, test 4" in out


def test_file_relative_to_images_is_preferred_when_both_exist(tmp_path, capsys):
    write_folder(tmp_path, standard_rows())
    for k in range(12):
        write_png(tmp_path / f"{k}.png", 255)  # decoys next to labels.csv
    dataset = FolderDataset(tmp_path, "train", 8)
    assert dataset.files_relative_to == "ROOT/images"
    assert dataset.load_image(1)[0, 0, 0].item() == 60  # images/3.png, not the decoy
    assert main(["data-info", "--dataset", "folder", "--root", str(tmp_path)]) == 0
    assert f"relative to ROOT/images ({tmp_path / 'images'})\n" in capsys.readouterr().out


def test_mixed_relative_paths_name_the_row_and_the_rule(tmp_path, capsys):
    rows = standard_rows()
    rows[4] = "images/4.png,0,valid"  # line 6: relative to ROOT, unlike the first row
    path = write_folder(tmp_path, rows)
    line = folder_error(tmp_path, capsys)
    assert f"{path} line 6: image file {tmp_path / 'images' / 'images' / '4.png'} does not" in line
    assert f"relative to ROOT/images for every row, decided by the first row, {path} line 2" in line


def test_latin1_labels_csv_is_one_line_asking_for_utf8(tmp_path, capsys):
    rows = [f"{row},{'crème' if k == 5 else 'rouge'}" for k, row in enumerate(standard_rows())]
    path = write_folder(tmp_path, rows, header="file,smile,split,colour", encoding="latin-1")
    line = folder_error(tmp_path, capsys)
    assert f"{path} line 7: not UTF-8 text (byte 0xe8); save the file as UTF-8" in line


def test_a_dataset_written_as_the_readme_says_loads_end_to_end(tmp_path, capsys):
    # README "Data formats": R/images/... and R/labels.csv with a file column, one column per
    # label and an optional split column.
    lines = ["file,smiling,age,split"]
    for k in range(12):
        write_png(tmp_path / "images" / "faces" / f"{k:05d}.png", 10 * k)
        lines.append(f"faces/{k:05d}.png,{k % 2},{20 + k},{('train', 'val', 'test')[k % 3]}")
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")
    splits = load_splits("folder", tmp_path, 16)
    assert {name: split.images.shape for name, split in splits.items()} == {
        name: (4, 3, 16, 16) for name in ("train", "valid", "test")}
    assert splits["valid"].labels["smiling"].tolist() == [1, 0, 1, 0]
    assert splits["test"].images[:, 0, 0, 0].tolist() == [20, 50, 80, 110]
    assert main(["data-info", "--dataset", "folder", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "smiling" in out and "binary" in out and "age" in out and "multiclass" in out


# ---------------------------------------------------------------------------------------------
# One image in two splits, or listed twice
# ---------------------------------------------------------------------------------------------


def test_folder_file_in_two_splits_is_refused_with_counts(tmp_path, capsys):
    rows = standard_rows() + ["0.png,0,test", "3.png,1,test", "1.png,1,test"]
    path = write_folder(tmp_path, rows)
    line = folder_error(tmp_path, capsys)
    assert f"{path}: the splits share image files" in line
    assert "2 file(s) in both train and test (e.g. 0.png, 3.png)" in line
    assert "1 file(s) in both valid and test (e.g. 1.png)" in line
    with pytest.raises(DatasetError, match="share image files"):
        load_splits("folder", tmp_path, 8, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("header", ["file,smile,split", "file,smile"])
def test_folder_file_listed_twice_in_one_split_is_refused(tmp_path, capsys, header):
    rows = standard_rows() + ["./6.png,0,train"]  # the same file as line 8, spelled otherwise
    if header == "file,smile":
        rows = [row.rsplit(",", 1)[0] for row in rows]
    path = write_folder(tmp_path, rows, header=header)
    line = folder_error(tmp_path, capsys)
    assert f"{path}: 1 row(s) list an image file that an earlier row lists" in line
    assert "'6.png' on lines 8 and 14" in line


def test_celeba_image_in_two_partitions_is_refused(celeba_copy, capsys):
    partition = celeba_copy / "celeba" / "list_eval_partition.txt"
    lines = partition.read_text().splitlines()
    first_test = next(k for k, line in enumerate(lines) if line.endswith(" 2"))
    lines[first_test] = lines[0].split()[0] + " 2"  # the first train image, also in test
    partition.write_text("\n".join(lines) + "\n")
    line = cli_error(["data-info", "--dataset", "celeba", "--root", str(celeba_copy)], capsys)
    assert f"{partition}: the splits share image files" in line
    assert "1 file(s) in both train and test (e.g. 000001.jpg)" in line


def test_fairface_test_csv_that_repeats_training_images_is_refused(fairface_copy, capsys):
    folder = fairface_copy / "fairface"
    train_rows = (folder / "fairface_label_train.csv").read_text().splitlines()[1:4]
    val = folder / "fairface_label_val.csv"
    val.write_text(val.read_text() + "\n".join(train_rows) + "\n")
    line = cli_error(["data-info", "--dataset", "fairface", "--root", str(fairface_copy)], capsys)
    shared = ", ".join(row.split(",")[0] for row in train_rows)
    assert ("3 file(s) in both fairface_label_train.csv and fairface_label_val.csv "
            f"(e.g. {shared})") in line
    with pytest.raises(DatasetError, match="share image files"):
        load_splits("fairface", fairface_copy, 16, splits=("train",))


def test_fairface_row_listed_twice_is_refused(fairface_copy, capsys):
    train = fairface_copy / "fairface" / "fairface_label_train.csv"
    lines = train.read_text().splitlines()
    train.write_text("\n".join([*lines, lines[1]]) + "\n")
    line = cli_error(["data-info", "--dataset", "fairface", "--root", str(fairface_copy)], capsys)
    assert f"{train}: 1 row(s) list an image file" in line
    assert f"on lines 2 and {len(lines) + 1}" in line


# ---------------------------------------------------------------------------------------------
# Splits without rows
# ---------------------------------------------------------------------------------------------


def test_header_only_labels_csv_is_refused(tmp_path, capsys):
    path = write_folder(tmp_path, [])
    line = folder_error(tmp_path, capsys)
    assert f"{path}: no rows after the header line" in line
    with pytest.raises(DatasetError, match="no rows"):
        available_labels("folder", tmp_path)


def test_split_column_without_test_rows_is_refused(tmp_path, capsys):
    path = write_folder(tmp_path, standard_rows(splits=("train", "valid", "train")))
    line = folder_error(tmp_path, capsys)
    assert f"{path}: split 'test' has no rows (no row of the 'split' column names it)" in line
    with pytest.raises(DatasetError, match="split 'test' has no rows"):
        load_splits("folder", tmp_path, 8, splits=("train",))


def test_too_few_rows_for_a_random_split_is_refused(tmp_path, capsys):
    rows = [f"{k}.png,{k % 2}" for k in range(5)]  # 80/10/10 of 5 rows: 4, 0, 1
    path = write_folder(tmp_path, rows, header="file,smile")
    line = folder_error(tmp_path, capsys)
    assert f"{path}: split 'valid' has no rows (5 rows split 80/10/10 at random" in line


def test_max_samples_still_keeps_the_first_rows(tmp_path):
    write_folder(tmp_path, standard_rows())
    split = load_splits("folder", tmp_path, 8, max_samples={"train": 2})["train"]
    assert split.images[:, 0, 0, 0].tolist() == [0, 60]


def test_celeba_without_test_partition_is_refused(celeba_copy, capsys):
    partition = celeba_copy / "celeba" / "list_eval_partition.txt"
    partition.write_text(partition.read_text().replace(" 2\n", " 1\n"))
    line = cli_error(["data-info", "--dataset", "celeba", "--root", str(celeba_copy)], capsys)
    assert f"{partition}: split 'test' (code 2) has no rows" in line


def test_fairface_header_only_val_csv_is_refused(fairface_copy, capsys):
    val = fairface_copy / "fairface" / "fairface_label_val.csv"
    val.write_text(val.read_text().splitlines()[0] + "\n")
    line = cli_error(["data-info", "--dataset", "fairface", "--root", str(fairface_copy)], capsys)
    assert f"{val}: no rows after the header line" in line


def test_describe_dataset_of_a_good_folder_names_every_split(tmp_path):
    write_folder(tmp_path, standard_rows())
    text = describe_dataset("folder", tmp_path, 8)
    assert "splits: train 4, valid 4, test 4 (12 images" in text
    assert "relative to ROOT/images" in text and "smile" in text


def test_fairface_train_csv_too_small_for_a_valid_split_is_refused(fairface_copy, capsys):
    train = fairface_copy / "fairface" / "fairface_label_train.csv"
    train.write_text("\n".join(train.read_text().splitlines()[:4]) + "\n")  # 3 rows: 10% is 0
    line = cli_error(["data-info", "--dataset", "fairface", "--root", str(fairface_copy)], capsys)
    assert f"{train}: split 'valid' has no rows (of its 3 rows, valid takes 10%)" in line
