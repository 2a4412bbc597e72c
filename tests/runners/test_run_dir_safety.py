"""Run directories: bad input is refused before anything is written, a run directory's config
changes only on an explicit --resume, attack results are never reused for other weights, a
damaged checkpoint or a full disk is one error line, and a finished run keeps only what later
steps need."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from noisyarl.builders import defence_from_config, load_data, resolve_tasks
from noisyarl.cli import main
from noisyarl.config import ConfigError, config_from_dict, load_config
from noisyarl.data.base import DatasetError
from noisyarl.data.registry import available_labels
from noisyarl.runners import experiment
from noisyarl.runners.experiment import _cached_stage, run_experiment, stage_key
from noisyarl.training.checkpoint import load_checkpoint, save_checkpoint
from noisyarl.utils.io import DiskFullError, atomic_torch_save, atomic_write_bytes, read_json


def _values(root, **sections) -> dict:
    """A one-epoch noisy-ARL run (σ = 1) on 64/32/32 images of 40 px, leakage attack only."""
    values = {
        "name": "safety",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40, "max_train": 64,
                 "max_valid": 32, "max_test": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 1.0},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"enabled": False}},
    }
    for section, changes in sections.items():
        values[section] = {**values[section], **changes}
    return values


def _cli(capsys, tmp_path: Path, values: dict, out: Path, *extra: str) -> tuple[int, str]:
    """``noisyarl run`` of ``values`` into ``out``: (exit status, stderr)."""
    config_path = tmp_path / "cli-config.yaml"
    config_path.write_text(yaml.safe_dump(values))
    capsys.readouterr()
    status = main(["run", str(config_path), "--out", str(out), *extra])
    return status, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def _snapshot(folder: Path) -> dict[str, tuple[str, int]]:
    """sha256 and mtime (ns) of every file under ``folder``."""
    return {str(path.relative_to(folder)): (hashlib.sha256(path.read_bytes()).hexdigest(),
                                            path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def finished_run(tiny_celeba_root, tmp_path_factory) -> Path:
    """A finished run of ``_values`` (σ = 1, default clean-up); treat as read-only."""
    run_dir = tmp_path_factory.mktemp("safety") / "run"
    run_experiment(config_from_dict(_values(tiny_celeba_root)), run_dir)
    return run_dir


@pytest.fixture
def run_copy(finished_run, tmp_path) -> Path:
    """A private copy of ``finished_run`` that a test may change."""
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any image is decoded."""
    def refuse(*args, **kwargs):
        raise AssertionError("images were decoded before the config was checked")

    monkeypatch.setattr(experiment, "load_data", refuse)


# --- what a finished run keeps ------------------------------------------------------------

def test_a_finished_run_keeps_the_weights_but_not_the_resume_state(finished_run):
    checkpoints = finished_run / "checkpoints"
    assert (checkpoints / "best.pt").is_file() and (checkpoints / "trained.pt").is_file()
    assert not (checkpoints / "last.pt").exists()  # weights + optimiser states, 3x best.pt
    assert "optimizers" not in load_checkpoint(checkpoints / "best.pt")
    metrics = read_json(finished_run / "metrics.json")
    assert metrics["stem"] == "imagenet" and metrics["split_seed"] == 0  # 40 px
    assert "ResNet stem: imagenet" in (finished_run / "report.md").read_text()


# --- a run directory's config changes only on an explicit --resume --------------------------

def test_a_new_run_into_a_finished_run_is_refused_and_writes_nothing(
        finished_run, tiny_celeba_root, tmp_path, capsys):
    before = _snapshot(finished_run)
    status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root, method={"sigma": 2.0}),
                       finished_run)
    assert status == 2
    assert "already holds a finished run; choose a new --out" in _one_error_line(err)
    assert _snapshot(finished_run) == before


def test_an_interrupted_run_without_resume_is_refused_before_its_config_is_touched(
        run_copy, tiny_celeba_root, tmp_path, capsys):
    (run_copy / "metrics.json").unlink()  # interrupted during the attacks
    before = _snapshot(run_copy)
    status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root, method={"sigma": 2.0}),
                       run_copy)
    assert status == 2
    line = _one_error_line(err)
    assert "interrupted run" in line and "pass --resume" in line and "new --out" in line
    assert _snapshot(run_copy) == before
    assert load_config(run_copy / "config.yaml").method.sigma == 1.0  # still resumable as itself


def test_resume_with_other_training_settings_names_each_differing_key(
        run_copy, tiny_celeba_root, tmp_path, capsys):
    (run_copy / "metrics.json").unlink()
    before = _snapshot(run_copy)
    values = _values(tiny_celeba_root, method={"sigma": 2.0}, train={"epochs": 2})
    status, err = _cli(capsys, tmp_path, values, run_copy, "--resume")
    assert status == 2
    line = _one_error_line(err)
    saved = run_copy / "config.yaml"
    assert f"method.sigma: 1.0 in {saved}, 2.0 now" in line
    assert f"train.epochs: 1 in {saved}, 2 now" in line
    assert "only attack settings may change on --resume" in line
    assert _snapshot(run_copy) == before


def test_resume_with_other_attack_settings_reruns_the_attack_and_rewrites_the_config(
        run_copy, tiny_celeba_root, tmp_path, capsys):
    checkpoints = _snapshot(run_copy / "checkpoints")
    old_stage = read_json(run_copy / "attacks" / "leakage.json")
    values = _values(tiny_celeba_root, attacks={"leakage": {"epochs": 1, "batch_size": 32,
                                                            "lr": 5e-4}})
    status, err = _cli(capsys, tmp_path, values, run_copy, "--resume")
    assert status == 0, err
    assert load_config(run_copy / "config.yaml").attacks.leakage.lr == 5e-4
    stage = read_json(run_copy / "attacks" / "leakage.json")
    assert stage["settings"]["attack"]["lr"] == 5e-4
    assert stage["settings"]["weights"] == old_stage["settings"]["weights"]  # not retrained
    assert _snapshot(run_copy / "checkpoints") == checkpoints


# --- attack results are keyed to the weights and the training settings ---------------------

def _plant(run_dir: Path, privacy: float) -> None:
    """Overwrite the saved leakage result (keeping its key) and make the run unfinished."""
    path = run_dir / "attacks" / "leakage.json"
    stage = read_json(path)
    stage["result"]["test"] = privacy
    path.write_text(json.dumps(stage))
    (run_dir / "metrics.json").unlink()


def test_a_saved_attack_result_is_reused_only_for_the_weights_it_ran_on(run_copy,
                                                                       tiny_celeba_root):
    config = config_from_dict(_values(tiny_celeba_root))
    _plant(run_copy, 12.3)
    assert run_experiment(config, run_copy, resume=True)["privacy"] == 12.3  # same key: reused

    best = run_copy / "checkpoints" / "best.pt"
    state = load_checkpoint(best)
    name = next(key for key, value in state["model"].items() if value.is_floating_point())
    state["model"][name] = state["model"][name] + 0.01  # other weights, same config
    save_checkpoint(best, state)
    _plant(run_copy, 12.3)
    metrics = run_experiment(config, run_copy, resume=True)
    assert metrics["privacy"] != 12.3 and 0 <= metrics["privacy"] <= 100
    stage = read_json(run_copy / "attacks" / "leakage.json")
    assert stage["result"]["test"] == metrics["privacy"]


def test_a_saved_attack_result_is_not_reused_under_other_training_settings(tiny_celeba_root,
                                                                          tmp_path):
    at_one = config_from_dict(_values(tiny_celeba_root))
    at_two = config_from_dict(_values(tiny_celeba_root, method={"sigma": 2.0}))
    utility, private = resolve_tasks(at_one, available_labels("celeba", tiny_celeba_root))
    defence = defence_from_config(at_one, utility, private)
    calls = []

    def compute():
        calls.append(1)
        return {"run": len(calls)}

    path, attack = tmp_path / "leakage.json", {"epochs": 1}
    first = _cached_stage(path, {**stage_key(at_one, defence), "attack": attack}, compute)
    again = _cached_stage(path, {**stage_key(at_one, defence), "attack": attack}, compute)
    other = _cached_stage(path, {**stage_key(at_two, defence), "attack": attack}, compute)
    assert (first, again, other) == ({"run": 1}, {"run": 1}, {"run": 2})


# --- config errors: refused before the first byte is written (or an image decoded) ---------

@pytest.mark.parametrize(("override", "key"), [
    ({"method": {"name": "noisy_arl", "split": 2, "sigma": 1.0, "params": {"bogus": 1}}},
     "method.params"),
    ({"train": {"epochs": 1, "batch_size": 32, "progress": False, "precision": "fp16",
                "device": "cpu"}}, "train.precision"),
    ({"tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male",
                                                             "kind": "multiclass"}}},
     "tasks.private.kind"),
    ({"tasks": {"utility": {"label": "Smiling"}, "private": {"label": "NoSuchLabel"}}},
     "tasks.private.label"),
])
def test_config_errors_are_found_before_anything_is_written(
        override, key, tiny_celeba_root, tmp_path, capsys, no_decoding):
    values = {**_values(tiny_celeba_root), **override}
    out = tmp_path / "run"
    status, err = _cli(capsys, tmp_path, values, out)
    assert status == 2 and key in _one_error_line(err)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_a_cuda_device_without_a_gpu_is_a_config_error(tiny_celeba_root, tmp_path, capsys,
                                                       no_decoding):
    out = tmp_path / "run"
    values = _values(tiny_celeba_root, train={"device": "cuda"})
    status, err = _cli(capsys, tmp_path, values, out)
    assert status == 2 and "train.device" in _one_error_line(err)
    assert not out.exists()


def test_an_out_below_a_file_is_refused_naming_the_file(tiny_celeba_root, tmp_path, capsys,
                                                        no_decoding):
    blocker = tmp_path / "results.txt"
    blocker.write_text("not a folder")
    with pytest.raises(ConfigError, match=f"{blocker} is a file, not a folder"):
        run_experiment(config_from_dict(_values(tiny_celeba_root)), blocker / "sub")
    status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root), blocker / "sub")
    line = _one_error_line(err)
    assert status == 2 and f"{blocker} is a file" in line
    assert blocker.read_text() == "not a folder"


def test_an_unwritable_out_is_refused_and_leaves_no_folder(tiny_celeba_root, tmp_path, capsys,
                                                           no_decoding, monkeypatch):
    def read_only(self, data):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "write_bytes", read_only)
    out = tmp_path / "new" / "run"
    status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root), out)
    line = _one_error_line(err)
    assert status == 2 and f"--out {out}: cannot write there (Permission denied)" in line
    assert not (tmp_path / "new").exists()  # the folders made for the check are gone


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root writes into read-only folders")
def test_a_read_only_out_folder_is_refused(tiny_celeba_root, tmp_path, capsys, no_decoding):
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o555)
    try:
        status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root), out)
    finally:
        out.chmod(0o755)
    assert status == 2 and f"--out {out}: cannot write there" in _one_error_line(err)
    assert list(out.iterdir()) == []


# --- splits that cannot give a figure -------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_splits(tiny_celeba_root):
    return load_data(config_from_dict(_values(tiny_celeba_root)), progress=False)


@pytest.mark.parametrize("empty", ["train", "valid", "test"])
def test_an_empty_split_is_refused_before_training(empty, tiny_splits, tiny_celeba_root,
                                                   tmp_path):
    splits = dict(tiny_splits)
    splits[empty] = splits[empty].subset(torch.zeros(0, dtype=torch.long))
    out = tmp_path / "run"
    with pytest.raises(DatasetError, match=f"the {empty} split is empty"):
        run_experiment(config_from_dict(_values(tiny_celeba_root)), out, splits=splits)
    assert not out.exists()


def test_a_task_with_one_class_in_the_train_split_is_refused(tiny_splits, tiny_celeba_root,
                                                             tmp_path):
    train = tiny_splits["train"]
    labels = {**train.labels, "Male": torch.zeros_like(train.labels["Male"])}
    splits = {**tiny_splits, "train": type(train)(train.images, labels, train.label_info)}
    out = tmp_path / "run"
    with pytest.raises(DatasetError, match="tasks.private.label: 'Male' has a single class"):
        run_experiment(config_from_dict(_values(tiny_celeba_root)), out, splits=splits)
    assert not out.exists()


# --- almost certainly a mistake: warned and recorded ---------------------------------------

def test_the_same_label_for_both_tasks_is_warned_recorded_and_all_checkpoints_kept(
        tiny_splits, tiny_celeba_root, tmp_path):
    values = _values(tiny_celeba_root, train={"keep_checkpoints": "all"},
                     tasks={"utility": {"label": "Male"}, "private": {"label": "Male"}})
    run_dir = tmp_path / "run"
    with pytest.warns(UserWarning, match="both 'Male'"):
        metrics = run_experiment(config_from_dict(values), run_dir, splits=tiny_splits)
    (message,) = read_json(run_dir / "metrics.json")["warnings"]
    assert "almost certainly a mistake" in message and metrics["warnings"] == [message]
    assert f"Warning: {message}" in (run_dir / "report.md").read_text()
    assert (run_dir / "checkpoints" / "last.pt").is_file()  # train.keep_checkpoints: all


# --- seeds ----------------------------------------------------------------------------------

def test_the_valid_split_follows_split_seed_not_the_run_seed(tiny_fairface_root):
    def valid(seed: int, split_seed: int) -> torch.Tensor:
        values = {"seed": seed, "data": {"dataset": "fairface", "root": str(tiny_fairface_root),
                                         "image_size": 16, "split_seed": split_seed},
                  "tasks": {"utility": {"label": "gender"}, "private": {"label": "race"}}}
        return load_data(config_from_dict(values), progress=False)["valid"].images

    assert torch.equal(valid(seed=1, split_seed=0), valid(seed=2, split_seed=0))
    assert not torch.equal(valid(seed=1, split_seed=0), valid(seed=1, split_seed=1))


# --- damaged checkpoints and full disks: one line, nothing lost -----------------------------

@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_last_checkpoint_on_resume_is_one_error_line(
        damage, run_copy, tiny_celeba_root, tmp_path, capsys):
    checkpoints = run_copy / "checkpoints"
    (run_copy / "metrics.json").unlink()
    (checkpoints / "trained.pt").unlink()  # interrupted during training
    whole = (checkpoints / "best.pt").read_bytes()
    (checkpoints / "last.pt").write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root), run_copy, "--resume")
    line = _one_error_line(err)
    assert status == 2 and f"{checkpoints / 'last.pt'} is damaged" in line
    assert "the last good epoch cannot be recovered from it" in line and "move it away" in line


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "last.pt"
    atomic_torch_save({"epoch": 1}, path)
    before = path.read_bytes()

    def full_disk(obj, handle):
        handle.write(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFullError) as raised:
        atomic_torch_save({"epoch": 2}, path)
    message = str(raised.value)
    assert isinstance(raised.value, ConfigError) and "\n" not in message
    assert f"no space left on device: {path} was not written" in message
    assert "nothing else was lost" in message
    assert path.read_bytes() == before and list(path.parent.iterdir()) == [path]


def test_a_full_disk_while_writing_the_decoder_names_it(tmp_path, monkeypatch):
    path = tmp_path / "attacks" / "reconstruction_decoder.safetensors"

    def full_disk(descriptor):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(DiskFullError, match=f"{path} was not written"):
        atomic_write_bytes(path, b"decoder weights")
    assert list(path.parent.iterdir()) == []


def test_a_full_disk_during_training_is_one_line_and_the_last_epoch_survives(
        tiny_celeba_root, tmp_path, capsys, monkeypatch):
    real_save, saves = torch.save, []

    def full_disk_at_epoch_two(obj, handle, *args, **kwargs):
        if isinstance(obj, dict) and "optimizers" in obj:  # last.pt
            saves.append(obj["epoch"])
            if obj["epoch"] == 2:
                handle.write(b"half a checkpoint")
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk_at_epoch_two)
    out = tmp_path / "run"
    status, err = _cli(capsys, tmp_path, _values(tiny_celeba_root, train={"epochs": 2}), out)
    last = out / "checkpoints" / "last.pt"
    line = _one_error_line(err)
    assert status == 2 and f"{last} was not written" in line and saves == [1, 2]
    monkeypatch.undo()
    assert load_checkpoint(last)["epoch"] == 1
    assert not [path for path in out.rglob("*.tmp")]
