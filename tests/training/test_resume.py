"""Runs that survive: SIGKILL at random moments, then ``--resume``, ends with the metrics of an
uninterrupted run; no result file is ever half-written; finished runs of an interrupted
comparison or sweep are not touched again."""

from __future__ import annotations

import codecs
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml
from PIL import Image
from torch import nn

from noisyarl.config import ConfigError, config_from_dict
from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods.base import Defence, DefenceSpec
from noisyarl.runners.sweep import run_sigma_sweep
from noisyarl.runtime import StepContext
from noisyarl.training.checkpoint import save_checkpoint
from noisyarl.training.loop import FitResult, LoopSettings, fit, prune_checkpoints
from noisyarl.utils.io import is_temporary, read_json, to_json_value

METRIC_KEYS = ("utility", "utility_valid", "best_epoch", "privacy", "privacy_last_epoch",
               "privacy_paper", "psnr", "ssim", "psnr_baseline", "sigma_eff")


def _config(root) -> dict:
    return {
        "name": "resume",
        "seed": 7,
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5},
        "train": {"epochs": 2, "batch_size": 32, "progress": True},
        "attacks": {"leakage": {"epochs": 2, "batch_size": 32},
                    "reconstruction": {"epochs": 2, "batch_size": 32}},
    }


def _command(kind, config_path, out, *extra):
    return [sys.executable, "-m", "noisyarl.cli", kind, str(config_path), "--out", str(out),
            *extra]


# The runs under test use the threads their pytest worker has (conftest.py): one each on the
# suite's two workers, where a second thread per run would only oversubscribe the 2 cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1" if os.environ.get("PYTEST_XDIST_WORKER") else "2"}


def assert_no_half_written_file(folder: Path) -> None:
    """Every result file under ``folder`` reads back completely in its format.

    Temporary files of the atomic writers may be left by a kill (``--resume`` removes them);
    TensorBoard's event files under ``tb/`` are append-only record logs written by TensorBoard
    itself, whose reader skips a torn last record, so they are not results and not checked.
    """
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or is_temporary(path) or "tb" in path.relative_to(folder).parts:
            continue
        suffix = path.suffix
        if suffix == ".json":
            json.loads(path.read_text(encoding="utf-8"))
        elif suffix == ".pt":
            torch.load(path, weights_only=True)
        elif suffix == ".yaml":
            assert yaml.safe_load(path.read_text(encoding="utf-8")) is not None, path
        elif suffix == ".png":
            with Image.open(path) as image:
                image.verify()
        elif suffix == ".safetensors":
            from safetensors.torch import load_file

            load_file(str(path))
        else:
            path.read_text(encoding="utf-8")


def _kill_after(command, marker: str, delay: float) -> str:
    """Start ``command``, SIGKILL it ``delay`` seconds after ``marker`` shows in its stderr
    (tqdm's bar of a stage). Returns what it printed; fails if it ended before the kill."""
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    seen = threading.Event()
    printed: list[str] = []

    def read() -> None:
        # os.read returns whatever has arrived; a buffered read(n) would wait for n characters,
        # which the last stage's short output may not reach before the run ends.
        assert process.stderr is not None
        descriptor = process.stderr.fileno()
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")  # bars split chars
        for chunk in iter(lambda: os.read(descriptor, 4096), b""):
            printed.append(decoder.decode(chunk))
            if marker in "".join(printed[-3:]):
                seen.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert seen.wait(timeout=300), f"{marker!r} never showed: {''.join(printed)[-2000:]}"
    time.sleep(delay)
    assert process.poll() is None, f"the run ended before the kill {delay:.2f} s after {marker}"
    process.send_signal(signal.SIGKILL)
    process.wait()
    reader.join(timeout=10)
    return "".join(printed)


@pytest.mark.slow
def test_kills_during_training_and_both_attacks_then_resume_match_uninterrupted(
        tiny_celeba_root, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(_config(tiny_celeba_root)))
    reference = tmp_path / "reference"
    subprocess.run(_command("run", config_path, reference), check=True, env=ENV,
                   capture_output=True)

    interrupted = tmp_path / "interrupted"
    draw = random.Random(20230731)  # random moments, reproducible
    _kill_after(_command("run", config_path, interrupted), "epoch 2", draw.uniform(0.0, 0.3))
    assert not (interrupted / "metrics.json").exists()
    assert_no_half_written_file(interrupted)

    # A fresh start into the same directory is refused; --resume continues it.
    refused = subprocess.run(_command("run", config_path, interrupted), env=ENV,
                             capture_output=True, text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr

    resume = _command("run", config_path, interrupted, "--resume")
    for stage in ("proxy attacker", "reconstruction attack"):  # the stages' progress bars
        _kill_after(resume, stage, draw.uniform(0.0, 0.3))
        assert_no_half_written_file(interrupted)
    subprocess.run(resume, check=True, env=ENV, capture_output=True)

    assert_no_half_written_file(interrupted)
    assert not [path for path in interrupted.rglob("*") if is_temporary(path)]
    expected, resumed = read_json(reference / "metrics.json"), read_json(
        interrupted / "metrics.json")
    for key in METRIC_KEYS:
        assert resumed[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    assert [h["valid/utility_accuracy"] for h in resumed["history"]] == pytest.approx(
        [h["valid/utility_accuracy"] for h in expected["history"]])
    for stage in ("leakage", "reconstruction"):  # both attacks restarted from their seeds
        for got, want in zip(resumed[stage]["curve"]["records"],
                             expected[stage]["curve"]["records"], strict=True):
            assert got == pytest.approx(want, rel=1e-5, abs=1e-6), stage


def _fingerprints(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Bytes and mtime (ns) of every file under ``folder``."""
    return {str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
            for path in sorted(folder.rglob("*")) if path.is_file()}


def _compare_config(root) -> dict:
    config = _config(root)
    config["train"] = {"epochs": 1, "batch_size": 32, "progress": False}
    config["attacks"] = {"leakage": {"epochs": 1, "batch_size": 32},
                         "reconstruction": {"enabled": False}}
    config["compare"] = [
        {"label": "ARL", "method": {"name": "noisy_arl", "split": 2, "sigma": 0.0}},
        {"label": "noisy ARL", "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5}},
    ]
    return config


@pytest.mark.slow
def test_an_interrupted_comparison_resumes_without_touching_its_finished_run(
        tiny_celeba_root, tmp_path):
    config_path = tmp_path / "compare.yaml"
    config_path.write_text(yaml.safe_dump(_compare_config(tiny_celeba_root)))
    out = tmp_path / "compare"
    process = subprocess.Popen(_command("compare", config_path, out), env=ENV,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    runs = out / "runs"
    deadline = time.monotonic() + 300
    while (process.poll() is None and time.monotonic() < deadline
           and not list(runs.glob("*/metrics.json"))):
        time.sleep(0.02)
    time.sleep(random.Random(5).uniform(0.0, 0.5))
    assert process.poll() is None, "the comparison ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    (finished,) = [path.parent for path in runs.glob("*/metrics.json")]
    before = _fingerprints(finished)
    assert not (out / "table.md").exists()

    subprocess.run(_command("compare", config_path, out, "--resume"), check=True, env=ENV,
                   capture_output=True)
    assert _fingerprints(finished) == before
    assert len(list(runs.glob("*/metrics.json"))) == 2
    table = (out / "table.md").read_text(encoding="utf-8")
    assert "ARL" in table and "noisy ARL" in table
    assert_no_half_written_file(out)


@pytest.mark.slow
def test_a_resumed_sweep_reuses_its_finished_runs_untouched(tiny_celeba_root, tmp_path):
    values = _compare_config(tiny_celeba_root)
    values.pop("compare")
    values["data"].update(image_size=40, max_train=64, max_valid=32, max_test=32)
    config = config_from_dict(values)
    out = tmp_path / "sweep"
    first = run_sigma_sweep(config, out, [0.0])
    finished = out / "runs" / config.with_method(
        dataclasses.replace(config.method, sigma=0.0)).run_name()
    before = _fingerprints(finished)

    # the same sweep asked again with one more sigma: the finished run is read back as it is
    second = run_sigma_sweep(config, out, [0.0, 1.0], resume=True)
    assert _fingerprints(finished) == before
    assert second.metrics[0.0] == to_json_value(first.metrics[0.0])
    assert [row["sigma"] for row in second.rows] == [0.0, 1.0]
    assert read_json(out / "sweep.json")["rows"][1]["sigma"] == 1.0


# --- a finished training after its last.pt is pruned; a damaged last.pt --------------------

PIXEL = Task("y", LabelInfo(kind="binary"))


class _PixelProbe(Defence):
    """A logistic regression on the mean colour: a defence that trains in milliseconds."""

    name = "pixel_probe"
    Params = dict

    def __init__(self) -> None:
        super().__init__(DefenceSpec(utility=PIXEL, private=PIXEL, split=1, sigma=0.0,
                                     noise=False, params={}, image_size=8))
        self.client = nn.AdaptiveAvgPool2d(1)
        self.utility_head = nn.Sequential(nn.Flatten(), nn.Linear(3, 1))

    def configure_optimizers(self):
        return {"main": torch.optim.Adam(self.utility_head.parameters(), lr=0.05)}

    def train_step(self, images, utility_target, private_target, optimizers, context):
        out = self.utility_head(self.client(images))
        loss = PIXEL.loss(out, utility_target)
        context.step(loss, optimizers["main"])
        return {"utility_loss": loss.detach(), "utility_correct": PIXEL.score_sum(out,
                                                                               utility_target)}

    def make_attacker(self, num_outputs):
        return nn.Sequential(nn.Flatten(), nn.Linear(3, num_outputs))


def _pixel_fit(checkpoint_dir: Path, resume: bool = False,
               defence: _PixelProbe | None = None) -> tuple[_PixelProbe, FitResult]:
    """Two epochs of :class:`_PixelProbe` on 24 + 8 random 8 px images."""
    generator = torch.Generator().manual_seed(1)

    def split(n: int) -> ImageSplit:
        images = torch.randint(0, 256, (n, 3, 8, 8), dtype=torch.uint8, generator=generator)
        return ImageSplit(images, {"y": torch.randint(0, 2, (n,), generator=generator)},
                          {"y": PIXEL.info})

    defence = defence or _PixelProbe()
    settings = LoopSettings(epochs=2, batch_size=8, augment=False, progress=False)
    result = fit(defence, {"train": split(24), "valid": split(8)}, PIXEL, PIXEL,
                 StepContext(torch.device("cpu")), settings, checkpoint_dir, resume=resume)
    return defence, result


def test_a_pruned_finished_training_resumes_without_training_again(tmp_path):
    trained, first = _pixel_fit(tmp_path)
    assert prune_checkpoints(tmp_path) == [tmp_path / "last.pt"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best.pt", "trained.pt"]

    def never(*args):
        raise AssertionError("trained again")

    reopened = _PixelProbe()
    reopened.train_step = never
    _, again = _pixel_fit(tmp_path, resume=True, defence=reopened)
    assert (again.best_epoch, again.best_valid_utility, again.history) == (
        first.best_epoch, first.best_valid_utility, first.history)
    for name, value in trained.state_dict().items():
        assert torch.equal(reopened.state_dict()[name], value), name
    with pytest.raises(FileExistsError, match="--resume"):  # a fresh fit does not overwrite it
        _pixel_fit(tmp_path)


def test_prune_keeps_last_pt_of_an_unfinished_training(tmp_path):
    save_checkpoint(tmp_path / "last.pt", {"epoch": 1})
    assert prune_checkpoints(tmp_path) == [] and (tmp_path / "last.pt").is_file()


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_last_pt_names_the_file_and_what_to_do(damage, tmp_path):
    _pixel_fit(tmp_path / "whole")
    whole = (tmp_path / "whole" / "last.pt").read_bytes()
    last = tmp_path / "cut" / "last.pt"
    last.parent.mkdir()
    last.write_bytes(b"" if damage == "empty" else whole[: len(whole) // 2])
    with pytest.raises(ConfigError) as raised:
        _pixel_fit(last.parent, resume=True)
    message = str(raised.value)
    assert f"{last} is damaged (" in message and "\n" not in message
    assert "the last good epoch cannot be recovered" in message and "new --out" in message
