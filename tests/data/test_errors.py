"""Every malformed input gives a DatasetError naming the file (and line for a bad row)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from noisyarl.data.base import DatasetError
from noisyarl.data.registry import DATASETS, available_labels, describe_dataset, load_splits

CELEBA_FILES = ("list_attr_celeba.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                "list_landmarks_align_celeba.txt", "list_eval_partition.txt")


def edit_line(path: Path, line: int, edit) -> None:
    """Replace line ``line`` (1-based) of ``path`` by ``edit(old_line)``."""
    lines = path.read_text().splitlines()
    lines[line - 1] = edit(lines[line - 1])
    path.write_text("\n".join(lines) + "\n")


def load_error(dataset: str, root: Path, **kwargs) -> str:
    with pytest.raises(DatasetError) as error:
        load_splits(dataset, root, 32, **kwargs)
    return str(error.value)


def test_unknown_dataset_lists_the_known_ones(tmp_path):
    with pytest.raises(ValueError, match="celeba, fairface, cifar10, folder"):
        load_splits("imagenet", tmp_path, 32)
    with pytest.raises(ValueError, match="known datasets"):
        available_labels("mnist", tmp_path)


@pytest.mark.parametrize("dataset", list(DATASETS))
def test_missing_root_shows_layout_and_source(dataset, tmp_path):
    missing = tmp_path / "nowhere"
    for call in (lambda: load_splits(dataset, missing, 32),
                 lambda: available_labels(dataset, missing),
                 lambda: describe_dataset(dataset, missing, 32)):
        with pytest.raises(DatasetError) as error:
            call()
        message = str(error.value)
        assert str(missing) in message and "expected" in message and "ROOT/" in message
        generator = "synth-objects" if dataset == "cifar10" else "synth-faces"
        assert f"noisyarl {generator}" in message  # where a stand-in comes from


def test_missing_celeba_folder_shows_where_celeba_comes_from(tmp_path):
    message = load_error("celeba", tmp_path)
    assert str(tmp_path / "celeba") in message
    assert "mmlab.ie.cuhk.edu.hk" in message and "img_align_celeba" in message


@pytest.mark.parametrize("name", CELEBA_FILES)
def test_each_missing_celeba_text_file_is_named(celeba_copy, name):
    (celeba_copy / "celeba" / name).unlink()
    message = load_error("celeba", celeba_copy)
    assert f"missing file: {celeba_copy / 'celeba' / name}" in message
    assert "expected CelebA layout" in message and "mmlab.ie.cuhk.edu.hk" in message


def test_missing_celeba_image_folder(celeba_copy):
    (celeba_copy / "celeba" / "img_align_celeba").rename(celeba_copy / "celeba" / "elsewhere")
    assert "missing image folder" in load_error("celeba", celeba_copy)


def test_unknown_attribute_in_the_header(celeba_copy):
    path = celeba_copy / "celeba" / "list_attr_celeba.txt"
    edit_line(path, 2, lambda line: line.replace("Smiling", "Grinning"))
    message = load_error("celeba", celeba_copy)
    assert f"{path} line 2" in message and "Grinning" in message


def test_wrong_column_count(celeba_copy):
    path = celeba_copy / "celeba" / "list_attr_celeba.txt"
    edit_line(path, 7, lambda line: line.rsplit(" ", 1)[0])
    message = load_error("celeba", celeba_copy)
    assert f"{path} line 7: expected 41 columns" in message and "got 40" in message


def test_value_that_is_not_minus_one_or_one(celeba_copy):
    path = celeba_copy / "celeba" / "list_attr_celeba.txt"
    edit_line(path, 9, lambda line: line[:-2] + " 0")
    message = load_error("celeba", celeba_copy)
    assert f"{path} line 9: expected attribute values -1 or 1, got 0" in message


def test_value_that_is_not_an_integer(celeba_copy):
    path = celeba_copy / "celeba" / "list_landmarks_align_celeba.txt"
    edit_line(path, 4, lambda line: line.rsplit(" ", 1)[0] + " 1.5")
    assert f"{path} line 4: expected integers, got '1.5'" in load_error("celeba", celeba_copy)


def test_count_line_that_disagrees_with_the_rows(celeba_copy):
    path = celeba_copy / "celeba" / "list_bbox_celeba.txt"
    edit_line(path, 1, lambda line: str(int(line) + 1))
    message = load_error("celeba", celeba_copy)
    assert f"{path} line 1: the count line says 49 images but the file has 48 rows" in message


def test_bad_partition_code(celeba_copy):
    path = celeba_copy / "celeba" / "list_eval_partition.txt"
    edit_line(path, 3, lambda line: line.split()[0] + " 3")
    assert f"{path} line 3: expected split codes" in load_error("celeba", celeba_copy)


def test_files_that_list_other_images(celeba_copy):
    path = celeba_copy / "celeba" / "identity_CelebA.txt"
    edit_line(path, 5, lambda line: "999999.jpg " + line.split()[1])
    message = load_error("celeba", celeba_copy)
    assert f"{path} line 5: image 999999.jpg" in message and "000005.jpg" in message


def test_truncated_jpeg_is_named_when_decoding(celeba_copy):
    path = celeba_copy / "celeba" / "img_align_celeba" / "000002.jpg"
    path.write_bytes(path.read_bytes()[:300])
    available_labels("celeba", celeba_copy)  # the text files are fine
    message = load_error("celeba", celeba_copy, splits=("train",))
    assert f"cannot decode image file {path}" in message


def test_missing_celeba_image_is_named_with_its_row(celeba_copy):
    path = celeba_copy / "celeba" / "img_align_celeba" / "000003.jpg"
    path.unlink()
    message = load_error("celeba", celeba_copy, splits=("train",))
    partition = celeba_copy / "celeba" / "list_eval_partition.txt"
    assert f"{partition} line 3: image file {path} does not exist" in message


def fairface_csv(root: Path, split: str = "train") -> Path:
    return root / "fairface" / f"fairface_label_{split}.csv"


@pytest.mark.parametrize(("column", "bad"), [(1, "15-19"), (2, "Other"), (3, "Martian")])
def test_fairface_unknown_category(fairface_copy, column, bad):
    path = fairface_csv(fairface_copy, "val")

    def replace(line: str) -> str:
        fields = line.split(",")
        fields[column] = bad
        return ",".join(fields)

    edit_line(path, 3, replace)
    name = ("age", "gender", "race")[column - 1]
    message = load_error("fairface", fairface_copy)
    assert f"{path} line 3: unknown {name} '{bad}'" in message


def test_fairface_wrong_column_count(fairface_copy):
    path = fairface_csv(fairface_copy)
    edit_line(path, 6, lambda line: line + ",extra")
    assert f"{path} line 6: expected 5 comma-separated fields" in load_error("fairface",
                                                                             fairface_copy)


def test_fairface_missing_image(fairface_copy):
    path = fairface_csv(fairface_copy, "val")
    file = path.read_text().splitlines()[2].split(",")[0]
    (fairface_copy / "fairface" / file).unlink()
    message = load_error("fairface", fairface_copy, splits=("test",))
    assert re.search(rf"{re.escape(str(path))} line 3: image file .*{re.escape(file)}", message)


def test_fairface_missing_csv_and_column(fairface_copy):
    path = fairface_csv(fairface_copy, "val")
    text = path.read_text()
    path.unlink()
    message = load_error("fairface", fairface_copy, splits=("test",))
    assert f"missing file: {path}" in message and "github.com/joojs/fairface" in message
    path.write_text(text.replace("race", "ethnicity", 1))
    assert f"{path} line 1" in load_error("fairface", fairface_copy, splits=("test",))


def test_truncated_fairface_image_is_named_when_decoding(fairface_copy):
    file = fairface_csv(fairface_copy, "val").read_text().splitlines()[1].split(",")[0]
    path = fairface_copy / "fairface" / file
    path.write_bytes(path.read_bytes()[:200])
    assert str(path) in load_error("fairface", fairface_copy, splits=("test",))


def test_describe_dataset_summarises_and_reports_errors(celeba_copy, fairface_root):
    text = describe_dataset("fairface", fairface_root, 32)
    assert "train" in text and "race" in text and "multiclass" in text and "Male" in text
    (celeba_copy / "celeba" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetError, match="list_eval_partition.txt"):
        describe_dataset("celeba", celeba_copy, 32)
