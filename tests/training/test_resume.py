"""Kill-and-resume: an interrupted run, resumed, ends with the uninterrupted run's metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from noisyarl.utils.io import read_json


def _config(root) -> dict:
    return {
        "name": "resume",
        "seed": 7,
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5},
        "train": {"epochs": 3, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32}},
    }


def _command(config_path, out, *extra):
    return [sys.executable, "-m", "noisyarl.cli", "run", str(config_path), "--out", str(out),
            *extra]


@pytest.mark.slow
def test_kill_after_an_epoch_then_resume_matches_uninterrupted(tiny_celeba_root, tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(_config(tiny_celeba_root)))
    env = {**os.environ, "OMP_NUM_THREADS": "2"}

    reference = tmp_path / "reference"
    subprocess.run(_command(config_path, reference), check=True, env=env, capture_output=True)

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_command(config_path, interrupted), env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = interrupted / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the run ended before it could be interrupted"
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (interrupted / "metrics.json").exists()

    # A fresh start into the same directory is refused; --resume continues it.
    refused = subprocess.run(_command(config_path, interrupted), env=env, capture_output=True,
                             text=True)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    subprocess.run(_command(config_path, interrupted, "--resume"), check=True, env=env,
                   capture_output=True)

    expected, resumed = read_json(reference / "metrics.json"), read_json(
        interrupted / "metrics.json")
    for key in ("utility", "utility_valid", "best_epoch", "privacy", "privacy_last_epoch",
                "psnr", "ssim"):
        assert resumed[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
    assert [h["valid/utility_accuracy"] for h in resumed["history"]] == pytest.approx(
        [h["valid/utility_accuracy"] for h in expected["history"]])
