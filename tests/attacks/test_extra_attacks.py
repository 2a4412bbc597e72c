"""``attacks.extra``: any registered attack runs in a run, validated against the registry,
cached as ``attacks/NAME.json``, recorded in ``metrics.json`` and the report, and not
recomputed on resume while its settings hold."""

from __future__ import annotations

import json
import shutil

import pytest

from noisyarl.attacks.distance_correlation import DistanceCorrelationAttack
from noisyarl.attacks.white_box import InversionOptions, WhiteBoxAttack
from noisyarl.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    extra_attack,
    load_config,
)
from noisyarl.runners.experiment import run_experiment, save_reconstruction_grid
from noisyarl.runners.result import RunResult

QUICK = {"white_box": {"steps": 3, "valid_images": 4, "test_images": 8,
                       "tv_weights": [0.0, 1.0]},
         "distance_correlation": {"chunk_size": 16}}


def _config(root, extra: list[str], options: dict | None = None):
    return config_from_dict({
        "name": "extra",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"enabled": False},
                    "extra": extra, "options": QUICK if options is None else options},
    })


@pytest.mark.parametrize(("extra", "options", "message"), [
    (["nonexistent"], {}, "attacks.extra: unknown attack"),
    (["leakage"], {}, "attacks.extra: unknown attack"),
    (["white_box", "white_box"], {}, "must not repeat"),
    (["white_box"], {"distance_correlation": {}}, "attacks.options: options for attack"),
    (["white_box"], {"white_box": {"stepz": 3}}, "attacks.options.white_box.stepz: unknown"),
    (["white_box"], {"white_box": {"steps": 0}}, "attacks.options.white_box.steps: must be"),
    (["white_box"], {"white_box": {"queries": "four"}}, "white_box.queries: expected an int"),
])
def test_extra_attacks_are_checked_against_the_registry(tiny_celeba_root, extra, options,
                                                        message):
    with pytest.raises(ConfigError, match=message):
        _config(tiny_celeba_root, extra, options)


def test_an_extra_attack_is_built_with_its_options(tiny_celeba_root):
    config = _config(tiny_celeba_root, ["white_box", "distance_correlation"])
    assert config.attacks.extra == ["white_box", "distance_correlation"]
    attack = extra_attack(config.attacks, "white_box")
    assert isinstance(attack, WhiteBoxAttack)
    assert attack.options == InversionOptions(**QUICK["white_box"])
    default = config_from_dict({"name": "d", "tasks": {"utility": {"label": "Smiling"},
                                                        "private": {"label": "Male"}}})
    assert default.attacks.extra == [] and default.attacks.options == {}
    overridden = apply_overrides(config, ["attacks.options.white_box.queries=4"])
    assert extra_attack(overridden.attacks, "white_box").options.queries == 4


def test_a_run_with_extra_attacks_records_them_and_resume_reuses_them(tiny_run_dir, tmp_path,
                                                                     monkeypatch):
    """Extra attacks added to a finished run by resuming it (the training and the other stages
    are reused) are computed once, recorded, and reused by a later resume."""
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    config = load_config(run_dir / "config.yaml", [
        "attacks.extra=[white_box, distance_correlation]",
        f"attacks.options={json.dumps(QUICK)}"])
    metrics = run_experiment(config, run_dir, resume=True)
    for name in ("white_box", "distance_correlation"):
        saved = json.loads((run_dir / "attacks" / f"{name}.json").read_text())
        assert saved["result"]["attack"] == name
        assert QUICK[name].items() <= saved["settings"]["options"].items()
        assert metrics["extra_attacks"][name] == saved["result"]
    cells = metrics["extra_attack_cells"]
    assert cells["white_box"]["psnr"] == metrics["extra_attacks"]["white_box"]["psnr"]
    assert cells["white_box"]["images"] == 8
    assert 0 <= cells["distance_correlation"]["dcor"] <= 1
    assert json.loads((run_dir / "metrics.json").read_text())["extra_attack_cells"] == cells
    assert (run_dir / "attacks" / "white_box.png").stat().st_size > 0
    report = (run_dir / "report.md").read_text()
    assert "## Extra attacks" in report and "distance_correlation" in report
    assert "white_box.png" in report
    # The decoder and input optimisation both reconstruct: the strongest is the one with the
    # largest PSNR gain over its own mean-image baseline, and the run's row carries it.
    gains = {"reconstruction": metrics["psnr"] - metrics["psnr_baseline"],
             "white_box": cells["white_box"]["psnr"] - cells["white_box"]["psnr_baseline"]}
    strongest = max(gains, key=gains.get)
    assert metrics["reconstruction_attacks"] == ["reconstruction", "white_box"]
    assert metrics["reconstruction_strongest"] == strongest
    assert (metrics["psnr_strongest"] - metrics["psnr_strongest_baseline"]
            == pytest.approx(gains[strongest]))
    assert "strongest reconstruction" in report
    # The typed result reads the same recoveries back from metrics.json (distance correlation
    # reconstructs nothing, so it is not one of them).
    recoveries = RunResult.load(run_dir).image_recoveries()
    assert [recovery.attack for recovery in recoveries] == ["reconstruction", "white_box"]
    assert {recovery.attack: recovery.gain_db for recovery in recoveries} == pytest.approx(gains)
    assert recoveries[1].psnr_baseline == cells["white_box"]["psnr_baseline"]
    assert (run_dir / "attacks" / "white_box_examples.pt").exists()
    grid = save_reconstruction_grid([("noisy ARL", run_dir)], tmp_path / "strongest.png",
                                    attacks=[metrics["reconstruction_strongest"]])
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def refuse(self, target, settings):
        raise AssertionError("a cached extra attack ran again")

    monkeypatch.setattr(WhiteBoxAttack, "run", refuse)
    monkeypatch.setattr(DistanceCorrelationAttack, "run", refuse)
    (run_dir / "metrics.json").unlink()  # the attack stage runs again, its stages are cached
    again = run_experiment(config, run_dir, resume=True)
    assert again["extra_attacks"] == metrics["extra_attacks"]

    changed = apply_overrides(config, ["attacks.options.distance_correlation.chunk_size=8"])
    with pytest.raises(AssertionError, match="ran again"):
        run_experiment(changed, run_dir, resume=True)
