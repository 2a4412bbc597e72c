"""`attacks.suite: worst_case` in `noisyarl run` and `noisyarl compare` tables."""

from __future__ import annotations

import dataclasses
import shutil

import pytest

from noisyarl.attacks.suite import WorstCaseResult
from noisyarl.config import ConfigError, apply_overrides, load_config
from noisyarl.runners.experiment import run_experiment
from noisyarl.runners.result import RunResult
from noisyarl.utils.io import read_json

WORST_CASE = ["attacks.suite=worst_case", "attacks.worst_case.attackers=[proxy, linear, knn]",
              "attacks.worst_case.queries=[1, 4]", "attacks.worst_case.identity_epochs=1",
              "attacks.reconstruction.enabled=false"]


pytestmark = pytest.mark.slow  # the suite trains several attackers (about a minute on 2 cores)


@pytest.fixture(scope="module")
def worst_case_run(tiny_run_dir, tmp_path_factory):
    """The finished tiny run, resumed with the worst-case suite: training is reused (attack
    settings are not part of a checkpoint), the suite runs."""
    run_dir = tmp_path_factory.mktemp("worst_case") / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    config = apply_overrides(load_config(run_dir / "config.yaml"), WORST_CASE)
    return config, run_dir, run_experiment(config, run_dir, resume=True)


def test_a_worst_case_run_reports_both_protocols(worst_case_run):
    config, run_dir, metrics = worst_case_run
    result = WorstCaseResult.from_dict(
        read_json(run_dir / "attacks" / "worst_case.json")["result"])
    assert list(result.attackers) == ["proxy", "linear", "knn"]
    assert result.attackers["proxy"].test == metrics["privacy"]  # the paper's attacker
    worst = max(attacker.test for attacker in result.attackers.values())
    assert metrics["privacy_worst_case"] == worst
    assert metrics["delta_worst_case"] == pytest.approx(metrics["utility"] - worst)
    assert metrics["delta"] == pytest.approx(metrics["utility"] - metrics["privacy"])
    assert [row.queries for row in result.fresh] == [1, 4]
    assert [row.queries for row in result.keyed.rows] == [1, 4]
    assert result.keyed.rows[1].identical_queries is True
    assert result.fresh[1].identical_queries is False
    assert 0.0 <= metrics["identity_top1"] <= 1.0 and 0.0 <= metrics["identity_auc"] <= 1.0
    report = (run_dir / "report.md").read_text()
    assert "worst-case privacy ↓" in report and "## Worst-case privacy" in report
    assert result.fresh[0].psnr is None  # reconstruction switched off
    assert "Multi-query averaging" in report and "Identity leakage" in report
    curves = run_dir / "attacks" / "curves"
    assert (curves / "worst_case_linear.png").stat().st_size > 0
    # Every attacker the suite trained leaves its curve; repeated (identical-query) rows do not.
    saved = read_json(curves / "worst_case_k4_fresh_leakage.json")
    assert saved == result.fresh[1].leakage_curve.to_dict()
    assert (curves / "worst_case_k4_fresh_leakage.png").stat().st_size > 0
    assert (curves / "worst_case_k1_keyed_leakage.json").is_file()
    assert not (curves / "worst_case_k1_fresh_leakage.json").exists()  # = leakage.json
    assert not (curves / "worst_case_k4_keyed_leakage.json").exists()
    assert (curves / "worst_case_identity.png").stat().st_size > 0
    row = RunResult.from_metrics(metrics).row("noisy ARL")
    assert row["privacy"] == metrics["privacy"]
    assert row["privacy_worst_case"] == metrics["privacy_worst_case"]


def test_resuming_a_worst_case_run_reuses_its_suite(worst_case_run):
    config, run_dir, metrics = worst_case_run
    stage = run_dir / "attacks" / "worst_case.json"
    before = stage.stat().st_mtime_ns
    (run_dir / "metrics.json").unlink()  # force the attack stages to be revisited
    again = run_experiment(config, run_dir, resume=True)
    assert stage.stat().st_mtime_ns == before
    assert again["privacy_worst_case"] == metrics["privacy_worst_case"]


def test_the_paper_protocol_stays_the_default(tiny_run_dir):
    config = load_config(tiny_run_dir / "config.yaml")
    assert read_json(tiny_run_dir / "metrics.json")["attack_suite"] == "paper"
    assert config.attacks.suite == "paper"
    with pytest.raises(ConfigError, match="attacks.worst_case.queries"):
        apply_overrides(config, ["attacks.worst_case.queries=[1, 1]"])
    assert dataclasses.asdict(config.attacks)["worst_case"]["queries"] == [1, 4, 16, 64]
