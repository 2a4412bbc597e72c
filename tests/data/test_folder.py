"""Folder + labels.csv datasets: kind inference, declared kinds, splits and bad rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from noisyarl.data.base import DatasetError
from noisyarl.data.folder import FolderDataset, infer_label_kind
from noisyarl.data.registry import available_labels, load_splits

COLORS = ["red", "green", "blue"]


def write_folder(root: Path, count: int = 12, with_split: bool = True) -> list[np.ndarray]:
    """Write ROOT/images/<k>.png (16 x 16, lossless) and ROOT/labels.csv; return the pixels."""
    (root / "images" / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    pixels, lines = [], ["file,smile,age,x,color" + (",split" if with_split else "")]
    for k in range(count):
        array = rng.integers(0, 256, size=(16, 16, 3), dtype=np.uint8)
        Image.fromarray(array).save(root / "images" / "sub" / f"{k}.png")
        pixels.append(array)
        split = ",".join(["", ("train", "valid", "test")[k % 3]]) if with_split else ""
        lines.append(f"sub/{k}.png,{k % 2},{k % 5},{k / 4:.2f},{COLORS[k % 3]}{split}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return pixels


def test_inferred_kinds_and_values(tmp_path):
    pixels = write_folder(tmp_path)
    splits = load_splits("folder", tmp_path, 16)
    train = splits["train"]
    assert {name: info.kind for name, info in train.label_info.items()} == {
        "smile": "binary", "age": "multiclass", "x": "regression", "color": "multiclass"}
    rows = [k for k in range(12) if k % 3 == 0]
    assert train.labels["smile"].tolist() == [k % 2 for k in rows]
    assert train.labels["age"].tolist() == [k % 5 for k in rows]
    assert torch.allclose(train.labels["x"], torch.tensor([[k / 4] for k in rows]), atol=1e-6)
    assert train.label_info["color"].class_names == ("blue", "green", "red")
    assert [train.label_info["color"].class_names[c] for c in train.labels["color"]] == [
        COLORS[k % 3] for k in rows]
    expected = torch.from_numpy(np.stack([pixels[k] for k in rows])).permute(0, 3, 1, 2)
    assert torch.equal(train.images, expected)


def test_declared_kinds_override_inference(tmp_path):
    write_folder(tmp_path)
    info = available_labels("folder", tmp_path, label_kinds={"age": "regression"})
    assert info["age"].kind == "regression" and info["smile"].kind == "binary"
    split = load_splits("folder", tmp_path, 16, splits=("test",),
                        label_kinds={"age": "regression"})["test"]
    assert split.labels["age"].dtype == torch.float32 and split.labels["age"].shape[1] == 1


def test_without_split_column_rows_are_split_80_10_10(tmp_path):
    write_folder(tmp_path, count=20, with_split=False)
    sizes = {name: len(FolderDataset(tmp_path, name, 8)) for name in ("train", "valid", "test")}
    assert sizes == {"train": 16, "valid": 2, "test": 2}
    files = [f for name in ("train", "valid", "test") for f in FolderDataset(tmp_path, name).files]
    assert sorted(files) == sorted(f"sub/{k}.png" for k in range(20))


def test_images_are_resized(tmp_path):
    write_folder(tmp_path)
    assert load_splits("folder", tmp_path, 24)["valid"].images.shape[1:] == (3, 24, 24)


@pytest.mark.parametrize(
    ("values", "kind"),
    [(["0", "1", "1"], "binary"), (["0", "3", "2"], "multiclass"), (["0.5", "2"], "regression"),
     (["-1", "2"], "regression"), (["cat", "1"], "multiclass"), (["500", "2"], "regression")],
)
def test_infer_label_kind(values, kind):
    assert infer_label_kind(values) == kind


def replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")


def test_wrong_column_count_names_file_and_line(tmp_path):
    write_folder(tmp_path)
    replace_line(tmp_path / "labels.csv", 4, "sub/2.png,1,2")
    with pytest.raises(DatasetError, match=r"labels\.csv line 4: expected 6"):
        load_splits("folder", tmp_path, 16)


def test_missing_image_names_file_and_line(tmp_path):
    write_folder(tmp_path)
    (tmp_path / "images" / "sub" / "3.png").unlink()  # row 3 is on line 5, split 'train'
    with pytest.raises(DatasetError, match=r"labels\.csv line 5: image file .*3\.png"):
        load_splits("folder", tmp_path, 16)


def test_value_that_does_not_fit_a_declared_kind(tmp_path):
    write_folder(tmp_path)
    with pytest.raises(DatasetError, match=r"labels\.csv line 4: column 'age' \(binary\)"):
        load_splits("folder", tmp_path, 16, label_kinds={"age": "binary"})
    replace_line(tmp_path / "labels.csv", 6, "sub/4.png,0,4,oops,red,valid")
    with pytest.raises(DatasetError, match=r"labels\.csv line 6: column 'x' \(regression\)"):
        load_splits("folder", tmp_path, 16, label_kinds={"x": "regression"})


def test_unknown_declared_label_and_bad_split(tmp_path):
    write_folder(tmp_path)
    with pytest.raises(DatasetError, match="declared label"):
        available_labels("folder", tmp_path, label_kinds={"smiling": "binary"})
    replace_line(tmp_path / "labels.csv", 3, "sub/1.png,1,1,0.25,green,holdout")
    with pytest.raises(DatasetError, match=r"labels\.csv line 3: column 'split'"):
        load_splits("folder", tmp_path, 16)


def test_missing_labels_csv_shows_the_layout(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError) as error:
        load_splits("folder", tmp_path, 16)
    assert str(tmp_path / "labels.csv") in str(error.value)
    assert "ROOT/images/" in str(error.value) and "synth-faces" in str(error.value)
