"""Reopening a run directory: config, tasks and trained weights come back without the dataset."""

from __future__ import annotations

import shutil

import pytest
import torch

from noisyarl.config import ConfigError
from noisyarl.runners.runs import load_run
from noisyarl.training.checkpoint import load_checkpoint


def test_load_run_restores_the_best_weights_without_the_dataset(tiny_run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run_dir, copy)
    loaded = load_run(copy)
    assert loaded.utility.label == "Smiling" and loaded.private.label == "Male"
    assert loaded.private.info.kind == "binary" and loaded.image_shape == (3, 40, 40)
    saved = load_checkpoint(copy / "checkpoints" / "best.pt")["model"]
    for name, value in loaded.defence.state_dict().items():
        assert torch.equal(value, saved[name]), name
    assert not loaded.defence.training


def test_load_run_names_what_is_missing(tmp_path):
    with pytest.raises(ConfigError, match="not a run directory"):
        load_run(tmp_path)


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_load_run_names_a_damaged_best_checkpoint(damage, tiny_run_dir, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run_dir, copy)
    best = copy / "checkpoints" / "best.pt"
    whole = best.read_bytes()
    best.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 3])
    with pytest.raises(ConfigError, match="best.pt is damaged") as raised:
        load_run(copy)
    assert "the trained weights of" in str(raised.value) and "\n" not in str(raised.value)
