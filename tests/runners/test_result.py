"""RunResult: the typed view of metrics.json, its status and its canonical table row."""

from __future__ import annotations

import copy
import json

import pytest

from noisyarl.evaluation.report import format_table
from noisyarl.runners.result import (
    COMPARE_COLUMNS,
    DELTA_KEYS,
    ROW_KEYS,
    RUN_COLUMNS,
    STRONGEST_RECONSTRUCTION_COLUMNS,
    STRONGEST_RECONSTRUCTION_KEYS,
    SUMMARY_COLUMNS,
    WORST_CASE_KEYS,
    RunResult,
    best_ranked,
    table_columns,
)

METRICS = {
    "method": "noisy_arl", "display_name": "Noisy ARL", "obfuscates": True, "split": 3,
    "sigma": 4.0, "noise": True, "params": {"lambda_adv": 0.1}, "run": "demo-noisy-s4", "seed": 0,
    "utility_task": {"label": "Smiling", "kind": "binary", "metric": "accuracy"},
    "private_task": {"label": "Male", "kind": "binary", "metric": "accuracy"},
    "client_gflops": 1.25,
    "client_cost": {"params": 2_500_000, "z_bytes": 8192, "peak_activation_bytes": 2**20},
    "utility": 80.0, "utility_sd": 0.5, "utility_valid": 81.0, "utility_chance": 50.0,
    "utility_learned": True,
    "privacy": 60.0, "privacy_sd": 1.0, "privacy_valid": 61.0, "privacy_paper": 62.0,
    "privacy_last_epoch": 59.0, "privacy_chance": 55.0, "privacy_advantage": 5.0,
    "privacy_learned": True, "delta": 20.0, "delta_paper": 18.0, "delta_normalised": 48.89,
    "psnr": 14.0, "ssim": 0.35, "psnr_baseline": 12.0, "ssim_baseline": 0.3,
    "reconstruction_learned": True, "h_rms": 1.2, "h_sd": 0.8, "sigma_eff": 5.0,
    "attack_epochs": {"leakage": 4, "reconstruction": 2}, "noise_draws": 3,
    "device": "cpu", "precision": "fp32", "stem": "imagenet", "split_seed": 0, "warnings": [],
    "history": [{"epoch": 1, "loss": 0.7}],
}


def _metrics(**changes):
    metrics = copy.deepcopy(METRICS)
    metrics.update(changes)
    return metrics


def test_json_round_trip_keeps_the_whole_dict():
    loaded = json.loads(json.dumps(METRICS))
    result = RunResult.from_metrics(loaded)
    assert result.to_dict() == METRICS
    assert json.loads(json.dumps(result.to_dict())) == METRICS
    assert RunResult.from_metrics(result.to_dict()) == result


def test_load_reads_metrics_json(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    assert RunResult.load(tmp_path).to_dict() == METRICS


def test_a_learned_run_gives_the_canonical_row():
    result = RunResult.from_metrics(METRICS)
    assert result.status == "" and result.ranked
    row = result.row("noisy ARL (σ=4)")
    assert list(row) == list(ROW_KEYS)
    assert row["method"] == "noisy ARL (σ=4)" and row["method_name"] == "noisy_arl"
    assert RunResult.from_metrics(METRICS).row()["method"] == "Noisy ARL"
    assert row["client_params_m"] == pytest.approx(2.5) and row["z_kib"] == pytest.approx(8.0)
    assert row["leakage_epochs"] == 4 and row["reconstruction_epochs"] == 2
    assert row["delta"] == 20.0 and row["privacy_advantage"] == 5.0
    assert result.validation_delta == pytest.approx(20.0)


def test_a_constant_attacker_is_reported_as_not_learned_and_not_ranked():
    result = RunResult.from_metrics(_metrics(privacy=55.0, privacy_chance=55.0,
                                             privacy_advantage=0.0, privacy_learned=False))
    row = result.row()
    assert row["status"] == "did not learn (attacker)"
    assert row["privacy_advantage"] == 0 and not result.ranked


def test_a_utility_head_at_chance_is_not_ranked_and_statuses_join():
    result = RunResult.from_metrics(_metrics(utility_learned=False))
    assert result.status == "did not learn (utility)" and not result.ranked
    both = RunResult.from_metrics(_metrics(utility_learned=False, reconstruction_learned=False))
    assert both.status == "did not learn (utility); did not learn (decoder)"


def test_best_ranked_skips_rows_that_did_not_learn():
    learned = RunResult.from_metrics(METRICS)
    unlearned = RunResult.from_metrics(_metrics(utility_valid=99.0, privacy_learned=False))
    assert best_ranked([unlearned, learned], lambda r: r.validation_delta) == (learned, True)
    assert best_ranked([unlearned], lambda r: r.validation_delta) == (unlearned, False)


def test_a_defence_that_does_not_obfuscate_has_no_delta_cells():
    worst_case = {"privacy_worst_case": 90.0, "worst_case_attacker": "mlp",
                  "delta_worst_case": -10.0, "privacy_max_queries": 91.0,
                  "identity_top1": 0.5, "identity_auc": 0.9}
    row = RunResult.from_metrics(_metrics(method="upper_bound", display_name="RN18",
                                          obfuscates=False, **worst_case)).row()
    assert all(row[key] is None for key in DELTA_KEYS)
    assert row["privacy"] == 60.0 and row["privacy_worst_case"] == 90.0
    assert list(row)[-len(WORST_CASE_KEYS):] == list(WORST_CASE_KEYS)


def test_an_old_metrics_dict_without_the_new_keys_still_gives_a_row():
    old = {"method": "noisy_arl", "split": 3, "sigma": 1.0, "run": "old", "utility": 70.0,
           "privacy": 65.0, "delta": 5.0, "psnr": None, "ssim": None, "client_gflops": 1.0,
           "chance": {"utility": 50.0, "privacy": 60.0}}
    result = RunResult.from_metrics(old)
    row = result.row()
    assert list(row) == list(ROW_KEYS)
    assert row["utility_chance"] is None and row["privacy_paper"] is None
    assert row["client_params_m"] is None and row["leakage_epochs"] is None
    assert row["method"] == "noisy_arl" and row["delta"] == 5.0
    assert result.status == "" and result.validation_delta is None
    assert result.to_dict() == old
    assert "—" in format_table([row], SUMMARY_COLUMNS)


def test_every_column_key_is_a_row_key():
    row = RunResult.from_metrics(METRICS).row()
    for columns in (RUN_COLUMNS, COMPARE_COLUMNS, SUMMARY_COLUMNS):
        assert {key for key, _, _ in columns} <= set(row)
    headers = [header for _, header, _ in RUN_COLUMNS]
    assert headers.index("utility ↑") < headers.index("privacy ↓ (valid-selected)")
    assert headers[-1] == "status"
    assert table_columns(RUN_COLUMNS, [RunResult.from_metrics(METRICS)]) == RUN_COLUMNS


def test_from_metrics_rejects_what_is_not_a_mapping():
    with pytest.raises(TypeError, match="mapping"):
        RunResult.from_metrics([1, 2])  # type: ignore[arg-type]


STRONGEST = {"reconstruction_attacks": ["reconstruction", "white_box"],
             "reconstruction_strongest": "white_box", "psnr_strongest": 16.5,
             "psnr_strongest_baseline": 12.2, "ssim_strongest": 0.48,
             "ssim_strongest_baseline": 0.31, "reconstruction_strongest_learned": True}


def test_the_strongest_reconstruction_is_a_row_cell_and_column_only_when_several_ran():
    several = RunResult.from_metrics(_metrics(**STRONGEST))
    row = several.row()
    assert list(row)[-len(STRONGEST_RECONSTRUCTION_KEYS):] == list(STRONGEST_RECONSTRUCTION_KEYS)
    assert row["reconstruction_strongest"] == "white_box" and row["psnr_strongest"] == 16.5
    assert row["psnr"] == 14.0  # the decoder's own figures stay where they were
    one = RunResult.from_metrics(METRICS)
    assert one.strongest_reconstruction is None
    assert not set(STRONGEST_RECONSTRUCTION_KEYS) & set(one.row())
    assert table_columns(RUN_COLUMNS, [one, several]) == [*RUN_COLUMNS,
                                                          *STRONGEST_RECONSTRUCTION_COLUMNS]
    assert RunResult.from_metrics(json.loads(json.dumps(several.to_dict()))) == several
