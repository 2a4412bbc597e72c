"""The command line: one call of the API per command, clear errors with exit status 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from noisyarl.cli import main
from noisyarl.config import load_config

CONFIGS = sorted((Path(__file__).parents[1] / "configs").glob("**/*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_validate(path):
    config = load_config(path)
    assert config.tasks.utility.label and config.tasks.private.label


def _write(tmp_path, values) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _config(root, **method) -> dict:
    return {
        "name": "cli",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", **method},
    }


def test_bad_config_value_exits_2_naming_the_key(tmp_path, capsys):
    path = _write(tmp_path, _config(tmp_path, sigma=-1.0))
    assert main(["run", str(path)]) == 2
    assert "method.sigma: must be >= 0" in capsys.readouterr().err


def test_bad_override_exits_2(tmp_path, capsys):
    path = _write(tmp_path, _config(tmp_path))
    assert main(["run", str(path), "--set", "method.split=9"]) == 2
    assert "method.split" in capsys.readouterr().err


def test_unknown_method_param_exits_2(tiny_celeba_root, tmp_path, capsys):
    path = _write(tmp_path, _config(tiny_celeba_root, params={"lamda": 1.0}))
    assert main(["run", str(path), "--out", str(tmp_path / "run")]) == 2
    assert "method.params.lamda: unknown key" in capsys.readouterr().err


def test_unknown_attribute_exits_2(tiny_celeba_root, tmp_path, capsys):
    values = _config(tiny_celeba_root)
    values["tasks"]["private"]["label"] = "Mal"
    assert main(["run", str(_write(tmp_path, values))]) == 2
    assert "tasks.private.label: unknown label 'Mal'" in capsys.readouterr().err


def test_task_kind_mismatch_exits_2(tiny_celeba_root, tmp_path, capsys):
    values = _config(tiny_celeba_root)
    values["tasks"]["utility"]["kind"] = "multiclass"
    assert main(["run", str(_write(tmp_path, values))]) == 2
    err = capsys.readouterr().err
    assert "tasks.utility.kind: 'multiclass' does not match label 'Smiling'" in err


def test_missing_dataset_exits_2_with_layout(tmp_path, capsys):
    path = _write(tmp_path, _config(tmp_path / "nowhere"))
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "img_align_celeba" in err
    assert "Traceback" not in err


def test_data_info_summarises_generated_faces(tiny_celeba_root, capsys):
    assert main(["data-info", "--dataset", "celeba", "--root", str(tiny_celeba_root),
                 "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "Smiling" in out and "train" in out


def test_correlation_prints_cramers_v_of_the_label_files(tiny_celeba_root, capsys):
    from noisyarl.evaluation.correlation import label_association

    assert main(["correlation", "celeba", "Mouth_Slightly_Open", "Smiling",
                 "--root", str(tiny_celeba_root)]) == 0
    expected = label_association("celeba", tiny_celeba_root, "Mouth_Slightly_Open", "Smiling")
    assert f"= {expected.cramers_v:.4f}" in capsys.readouterr().out


def test_correlation_of_an_unknown_column_exits_2(tiny_celeba_root, capsys):
    assert main(["correlation", "celeba", "Smile", "Male", "--root", str(tiny_celeba_root)]) == 2
    assert "unknown label 'Smile'" in capsys.readouterr().err


def test_compare_without_methods_and_sweep_without_noise_exit_2(tiny_celeba_root, tmp_path,
                                                                capsys):
    path = _write(tmp_path, _config(tiny_celeba_root))
    assert main(["compare", str(path), "--out", str(tmp_path / "c")]) == 2
    assert "compare: the config lists no methods" in capsys.readouterr().err
    assert main(["sweep", str(path), "--set", "method.name=upper_bound",
                 "--out", str(tmp_path / "s")]) == 2
    assert "upper_bound has no noise module" in capsys.readouterr().err


@pytest.mark.parametrize("sigma", ["-2", "nan", "inf"])
def test_sweep_rejects_a_negative_or_non_finite_sigma_on_the_command_line(tmp_path, capsys,
                                                                          sigma):
    path = _write(tmp_path, _config(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", str(path), "--sigma", "1", sigma])
    assert exit_info.value.code == 2
    assert f"expected a finite number >= 0, got {sigma}" in capsys.readouterr().err


def test_run_with_seeds_trains_one_run_per_seed_and_reports_intervals(tiny_celeba_root,
                                                                     tmp_path, capsys):
    values = _config(tiny_celeba_root, split=2, sigma=1.0)
    values["train"] = {"epochs": 1, "batch_size": 32, "progress": False}
    values["data"].update(max_train=64, max_valid=32, max_test=32)
    values["attacks"] = {"leakage": {"epochs": 1, "batch_size": 32},
                         "reconstruction": {"enabled": False}}
    out = tmp_path / "seeds"
    assert main(["run", str(_write(tmp_path, values)), "--seeds", "3", "4", "--out",
                 str(out)]) == 0
    assert (out / "seed3" / "metrics.json").is_file() and (out / "seed4" / "metrics.json").is_file()
    summary = (out / "summary.md").read_text()
    assert "utility ↑ ± 95 % CI" in summary and " ± " in summary.splitlines()[-1]
    assert "Student-t interval over 2 seeds (3, 4)" in (out / "report.md").read_text()


def test_a_repeated_seed_exits_2(tmp_path, capsys):
    assert main(["run", str(_write(tmp_path, _config(tmp_path))), "--seeds", "1", "1"]) == 2
    assert "seeds: must not repeat a seed" in capsys.readouterr().err


def test_executor_and_address_flags_set_the_executor_section(tmp_path):
    from noisyarl.cli import _load_config, build_parser

    path = _write(tmp_path, _config(tmp_path))
    for command in (["compare", str(path)], ["sweep", str(path)], ["run", str(path)]):
        args = build_parser().parse_args([*command, "--executor", "ray",
                                          "--address", "10.0.0.1:6379"])
        executor = _load_config(args).executor
        assert (executor.name, executor.address) == ("ray", "10.0.0.1:6379")
    assert _load_config(build_parser().parse_args(["run", str(path)])).executor.name == "serial"
