"""Rows over seeds: means, intervals, per-seed values, statuses and paired comparisons, on
hand-made results (no training)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyarl.runners.result import RunResult
from noisyarl.runners.seeds import SeedSummary, paired_comparisons, studied_rows


def _result(seed, utility, privacy, *, sigma=4.0, learned=True, per_image=None,
            method="noisy_arl"):
    metrics = {
        "method": method, "display_name": method, "obfuscates": True, "sigma": sigma,
        "noise": True, "seed": seed, "run": f"x-seed{seed}", "utility": utility,
        "privacy": privacy, "delta": utility - privacy, "utility_chance": 52.0,
        "privacy_chance": 60.0, "privacy_advantage": privacy - 60.0, "utility_learned": learned,
        "privacy_learned": True, "utility_valid": utility, "privacy_valid": privacy,
    }
    if per_image is not None:
        metrics["utility_per_image"], privacy_images = per_image
        metrics["leakage"] = {"test_per_image": privacy_images}
    return RunResult.from_metrics(metrics)


def test_a_row_over_seeds_gives_mean_interval_and_per_seed_values():
    summary = SeedSummary.of("noisy", [_result(0, 90.0, 66.0), _result(1, 88.0, 70.0),
                                       _result(2, 89.0, 68.0)])
    row = summary.row()
    assert row["utility"] == pytest.approx(89.0) and row["utility_seeds"] == [90.0, 88.0, 89.0]
    assert row["delta"] == pytest.approx(21.0)
    assert row["delta_low"] < 21.0 < row["delta_high"]
    assert row["seeds"] == [0, 1, 2] and row["interval"] == "t over seeds"
    assert row["runs"] == ["x-seed0", "x-seed1", "x-seed2"] and "run" not in row
    assert summary.table_row()["utility"].text() == "89.00 ± 2.48"


def test_one_seed_gets_a_bootstrap_interval_over_its_test_images():
    rng = np.random.default_rng(0)
    utility = (rng.random(400) < 0.9) * 100.0
    privacy = (rng.random(400) < 0.65) * 100.0
    result = _result(0, utility.mean(), privacy.mean(), per_image=(list(utility), list(privacy)))
    interval = SeedSummary.of("noisy", [result]).intervals["delta"]
    assert interval.kind == "bootstrap over test images" and interval.n == 400
    assert interval.mean == pytest.approx(utility.mean() - privacy.mean())
    assert interval.low < interval.mean < interval.high
    assert 4 < interval.high - interval.low < 16  # about ±3.9 pp at n = 400


def test_one_seed_without_per_image_outcomes_shows_its_value_without_an_interval():
    interval = SeedSummary.of("old run", [_result(0, 90.0, 66.0)]).intervals["utility"]
    assert interval.kind == "one value" and interval.text() == "90.00"


def test_a_row_is_ranked_only_when_every_seed_learned_and_says_which_did_not():
    summary = SeedSummary.of("maxent", [_result(0, 50.0, 70.0, learned=False),
                                        _result(1, 80.0, 70.0),
                                        _result(2, 51.0, 70.0, learned=False)])
    assert not summary.ranked
    assert summary.status == "seeds 0, 2: did not learn (utility)"


def test_paired_comparison_of_the_studied_row_against_every_other():
    noisy = SeedSummary.of("noisy", [_result(s, 89.0 + d, 66.0 - d) for s, d in
                                     enumerate([0.5, -0.3, 0.2, 0.0, 0.4])])
    arl = SeedSummary.of("arl", [_result(s, 92.0 + d, 89.0 + d, sigma=0.0) for s, d in
                                 enumerate([0.4, -0.2, 0.1, 0.3, 0.0])])
    assert studied_rows([arl, noisy]) == ["noisy"]
    # noise without the adversary is a baseline, not the studied defence
    ablation = SeedSummary.of("noise only", [_result(0, 90.0, 80.0, method="noise_only")])
    assert studied_rows([ablation, arl, noisy]) == ["noisy"]
    assert studied_rows([ablation, arl]) == ["noise only"]  # none: the first row
    (comparison,) = paired_comparisons([arl, noisy])
    assert (comparison.a, comparison.b) == ("noisy", "arl")
    assert comparison.comparison.significant and comparison.comparison.difference.n == 5
    assert comparison.words().startswith("Δ: noisy is higher than arl by")


def test_one_shared_seed_is_compared_image_by_image():
    rng = np.random.default_rng(1)
    shared_utility = list((rng.random(300) < 0.9) * 100.0)
    noisy = _result(0, 90.0, 62.0, per_image=(shared_utility,
                                               list((rng.random(300) < 0.62) * 100.0)))
    arl = _result(0, 90.0, 89.0, sigma=0.0, per_image=(shared_utility,
                                                      list((rng.random(300) < 0.89) * 100.0)))
    (comparison,) = paired_comparisons([SeedSummary.of("noisy", [noisy]),
                                        SeedSummary.of("arl", [arl])])
    assert comparison.comparison.test == "paired bootstrap over test images"
    assert comparison.comparison.significant


def test_an_unknown_reference_row_is_named():
    summary = SeedSummary.of("noisy", [_result(0, 90.0, 66.0)])
    with pytest.raises(ValueError, match="unknown reference row"):
        paired_comparisons([summary], ["ARL"])


percent = st.floats(0, 100, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(percent, percent), min_size=2, max_size=8))
def test_the_mean_row_is_the_mean_of_the_seeds(pairs):
    results = [_result(seed, u, p) for seed, (u, p) in enumerate(pairs)]
    row = SeedSummary.of("x", results).row()
    for key, values in (("utility", [u for u, _ in pairs]), ("privacy", [p for _, p in pairs]),
                        ("delta", [u - p for u, p in pairs])):
        assert row[key] == pytest.approx(sum(values) / len(values), abs=1e-6)
        assert row[f"{key}_low"] <= row[key] + 1e-6 <= row[f"{key}_high"] + 2e-6


def test_the_strongest_reconstruction_gets_an_interval_only_where_it_was_measured():
    def with_strongest(seed, psnr):
        metrics = _result(seed, 90.0, 66.0).to_dict()
        metrics.update(reconstruction_strongest="white_box", psnr_strongest=psnr,
                       psnr_strongest_baseline=12.0, ssim_strongest=0.4,
                       ssim_strongest_baseline=0.3)
        return RunResult.from_metrics(metrics)

    row = SeedSummary.of("noisy", [with_strongest(0, 15.0), with_strongest(1, 17.0)]).row()
    assert row["psnr_strongest"] == pytest.approx(16.0)
    assert row["psnr_strongest_low"] < 16.0 < row["psnr_strongest_high"]
    assert row["psnr_strongest_seeds"] == [15.0, 17.0]
    plain = SeedSummary.of("arl", [_result(0, 90.0, 80.0), _result(1, 91.0, 81.0)]).row()
    assert "psnr_strongest" not in plain and "psnr_strongest_low" not in plain
