"""Comparison tables: every method on the same data and seed, files shaped like the paper's."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from noisyarl.config import ConfigError, config_from_dict, config_to_dict
from noisyarl.runners.compare import run_comparison

STATUSES = ("did not learn (utility)", "did not learn (attacker)", "did not learn (decoder)")

ROWS = [
    {"label": "RN18", "method": {"name": "upper_bound"}},
    {"label": "ARL", "method": {"name": "noisy_arl", "split": 2, "sigma": 0.0}},
    {"label": "noisy ARL", "method": {"name": "noisy_arl", "split": 2, "sigma": 2.0}},
]


def _config(root, compare):
    return config_from_dict({
        "name": "cmp",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32}},
        "compare": compare,
        "reference": {"table": "3"},
    })


def test_compare_writes_a_paper_shaped_table_plot_and_report(tiny_celeba_root, tmp_path):
    rows = run_comparison(_config(tiny_celeba_root, ROWS), tmp_path)
    assert [row["method"] for row in rows] == ["RN18", "ARL", "noisy ARL"]
    with open(tmp_path / "table.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [row["method"] for row in table] == ["RN18", "ARL", "noisy ARL"]
    assert table[0]["delta"] == ""  # the upper bound sends raw images: no Δ, as in the paper
    assert float(table[0]["client_gflops"]) == 0
    for row in table[1:]:
        assert float(row["delta"]) == pytest.approx(float(row["utility"]) - float(row["privacy"]))
        assert float(row["client_gflops"]) > 0 and float(row["z_kib"]) > 0
    # Same client architecture, so the same cost; σ changes only the noise.
    assert table[1]["client_gflops"] == table[2]["client_gflops"]
    assert list(table[0])[:3] == ["method", "method_name", "split"]
    assert all(set(filter(None, row["status"].split("; "))) <= set(STATUSES) for row in table)
    header = (tmp_path / "table.md").read_text().splitlines()[2]
    assert header.startswith("| method | utility ↑ ± 95 % CI | utility chance | privacy ↓ "
                             "(valid-selected) ± 95 % CI | privacy chance | advantage ↓ (pp) "
                             "± 95 % CI | Δ ↑ (pp) ± 95 % CI |")
    assert "| status | client GFLOPs |" in header
    report = (tmp_path / "report.md").read_text()
    assert "Headline privacy" in report and "never ranked" in report
    assert "bootstrap over the test images" in report  # one seed: labelled image intervals
    assert "## Paired differences of Δ" in (tmp_path / "table.md").read_text()
    assert "privacy_utility.png" in report and "reconstructions.png" in report
    assert "Paper reference" in report and "NoisyARL" in report
    for name in ("privacy_utility.png", "reconstructions.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_rows_share_data_and_seed_and_resume_reuses_them(tiny_celeba_root, tmp_path):
    config = _config(tiny_celeba_root, ROWS[1:2])
    first = run_comparison(config, tmp_path)
    again = run_comparison(config, tmp_path, resume=True)
    assert again == first
    # a row's finished run is its own: adding a row to the comparison does not redo it
    (metrics,) = tmp_path.glob("runs/*/metrics.json")
    before = metrics.stat().st_mtime_ns
    grown = run_comparison(_config(tiny_celeba_root, ROWS[1:3]), tmp_path, resume=True)
    assert grown[0] == first[0] and metrics.stat().st_mtime_ns == before


def test_a_two_seed_comparison_gives_intervals_and_paired_differences(tiny_celeba_root,
                                                                      tmp_path):
    config = _config(tiny_celeba_root, ROWS[1:])
    config.seeds = [0, 1]
    rows = run_comparison(config, tmp_path)
    runs = sorted(path.name for path in (tmp_path / "runs").iterdir())
    assert runs == ["cmp-noisy_arl-K2-s0-seed0", "cmp-noisy_arl-K2-s0-seed1",
                    "cmp-noisy_arl-K2-s2-seed0", "cmp-noisy_arl-K2-s2-seed1"]
    for row in rows:
        assert row["seeds"] == [0, 1] and row["interval"] == "t over seeds"
        assert row["utility"] == pytest.approx(sum(row["utility_seeds"]) / 2)
        assert row["utility_low"] <= row["utility"] <= row["utility_high"]
    table = (tmp_path / "table.md").read_text()
    assert " ± " in table.split("## Paired")[0]
    paired = table.split("## Paired differences of Δ")[1]
    assert "| noisy ARL | ARL |" in paired and "paired t-test over seeds" in paired
    report = (tmp_path / "report.md").read_text()
    assert "Student-t interval over 2 seeds" in report
    assert "Δ: " in report  # the paired difference said in words
    with open(tmp_path / "table.csv", newline="") as handle:
        assert "delta_seeds" in next(csv.reader(handle))
    finished = {path: path.stat().st_mtime_ns for path in tmp_path.glob("runs/*/metrics.json")}
    assert run_comparison(config, tmp_path, resume=True) == rows
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # nothing re-trained
    # A row named as the reference replaces the default (noisy ARL against every other row).
    config.compare = [dataclasses.replace(config.compare[0], reference=True), config.compare[1]]
    run_comparison(config, tmp_path, resume=True)
    paired = (tmp_path / "table.md").read_text().split("## Paired differences of Δ")[1]
    assert "| ARL | noisy ARL |" in paired and "| noisy ARL | ARL |" not in paired


@pytest.mark.parametrize(("compare", "message"), [
    ([], "compare: the config lists no methods"),
    ([ROWS[1], {**ROWS[2], "label": "ARL"}], "row labels must differ"),
    ([{"label": "RN18", "method": {"name": "upper_bound", "sigma": 1.0}}],
     "method.sigma: upper_bound has no noise module"),
])
def test_bad_comparisons_are_rejected_with_the_key(tiny_celeba_root, tmp_path, compare,
                                                   message):
    with pytest.raises(ConfigError, match=message):
        run_comparison(_config(tiny_celeba_root, compare), tmp_path)


def test_a_comparison_with_input_optimisation_shows_each_rows_strongest_reconstruction(
        tiny_celeba_root, tmp_path):
    config = config_from_dict({
        **config_to_dict(_config(tiny_celeba_root, ROWS[2:])),
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32},
                    "extra": ["white_box"],
                    "options": {"white_box": {"steps": 3, "valid_images": 4, "test_images": 8,
                                              "tv_weights": [0.0, 1.0]}}}})
    (row,) = run_comparison(config, tmp_path)
    assert row["reconstruction_strongest"] in ("reconstruction", "white_box")
    assert row["psnr_strongest_baseline"] is not None
    header = (tmp_path / "table.md").read_text().splitlines()[2]
    assert "| strongest reconstruction | its PSNR (dB) ± 95 % CI |" in header
    report = (tmp_path / "report.md").read_text()
    assert "reconstructions_strongest.png" in report and "Strongest reconstruction:" in report
    assert (tmp_path / "reconstructions_strongest.png").read_bytes()[:4] == b"\x89PNG"
