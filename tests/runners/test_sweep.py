"""The σ sweep: one run per σ, the validation choice, and the files a user plots from."""

from __future__ import annotations

import csv
import json

import pytest

from noisyarl.config import ConfigError, config_from_dict
from noisyarl.runners.sweep import run_sigma_sweep


def _config(root, method="noisy_arl"):
    return config_from_dict({
        "name": "sw",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": method, "split": 2},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32}},
        "sweep": {"sigmas": [0.0, 2.0]},
    })


def test_sweep_writes_one_row_per_sigma_and_picks_sigma_on_validation(tiny_celeba_root,
                                                                        tmp_path):
    result = run_sigma_sweep(_config(tiny_celeba_root), tmp_path)
    assert [row["sigma"] for row in result.rows] == [0.0, 2.0]
    ranked = [row for row in result.rows if row["status"] == ""] or result.rows
    best = max(ranked, key=lambda row: row["valid_delta"])
    assert result.best_sigma == best["sigma"]
    assert result.best_ranked == (ranked is not result.rows)
    for row in result.rows:
        assert row["delta"] == pytest.approx(row["utility"] - row["privacy"])
        metrics = json.loads((tmp_path / "runs" / row["runs"][0] / "metrics.json").read_text())
        assert metrics["sigma"] == row["sigma"]
        assert metrics["reconstruction"] is None  # off by default: σ is chosen without it
    with open(tmp_path / "sweep.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [float(row["sigma"]) for row in table] == [0.0, 2.0]
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["best_sigma"] == result.best_sigma
    assert (tmp_path / "sigma_sweep.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (tmp_path / "report.md").read_text()
    assert "σ chosen on the validation split" in report
    assert "| σ | utility ↑ ± 95 % CI | utility chance |" in report and "| status |" in report
    assert "bootstrap over the test images" in report


def test_sigmas_argument_overrides_the_config_and_resume_reuses_finished_runs(
        tiny_celeba_root, tmp_path):
    first = run_sigma_sweep(_config(tiny_celeba_root), tmp_path, [2.0])
    again = run_sigma_sweep(_config(tiny_celeba_root), tmp_path, [2.0], resume=True)
    assert len(first.rows) == 1 and again.rows == first.rows


def test_a_defence_without_noise_cannot_be_swept(tiny_celeba_root, tmp_path):
    with pytest.raises(ConfigError, match="no noise module"):
        run_sigma_sweep(_config(tiny_celeba_root, method="upper_bound"), tmp_path)
