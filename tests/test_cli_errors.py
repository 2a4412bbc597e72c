"""Bad input through the command line: one `error:` line, exit status 2, and nothing written.

Every case fails before any data is decoded or any model trained (issue 12): the config, the
device, the output location and a finished output folder are all checked first.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
import yaml

from noisyarl.cli import build_parser, main
from noisyarl.config import load_config


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working folder (default outputs such as runs/ would land here)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write_config(folder: Path, **sections) -> Path:
    values = {
        "name": "err",
        "data": {"dataset": "celeba", "root": str(folder / "no-data"), "image_size": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5},
        **sections,
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def _files(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` with its bytes (None for folders)."""
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def _fails_cleanly(argv: list[str], folder: Path, capsys) -> str:
    """Run the CLI; assert exit 2, one `error:` line, no traceback, no file changed. -> stderr"""
    before = _files(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    assert _files(folder) == before
    return err


def _usage_error(argv: list[str], capsys) -> str:
    """argparse rejects ``argv``: exit status 2, the message on stderr. -> stderr"""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


NON_FINITE = [
    ("method.sigma=.inf", "method.sigma: must be a finite number, got inf"),
    ("method.sigma=.nan", "method.sigma: must be a finite number, got nan"),
    ("attacks.leakage.lr=-.inf", "attacks.leakage.lr: must be a finite number"),
    ("sweep.sigmas=[1, .inf]", "sweep.sigmas[1]: must be a finite number"),
    ("method.params.lambda_adv=.inf", "method.params.lambda_adv: must be a finite number"),
    ("method.params={lr: .nan}", "method.params.lr: must be a finite number"),
]
OTHER_BAD_VALUES = [
    ("seed=-1", "seed: must be in 0..4294967295"),
    ("data.split_seed=-1", "data.split_seed: must be in 0..4294967295"),
    ("name=a/b", "name: must be a non-empty name without /"),
    ("train.device=cuda:x", "train.device: must be auto, cpu, cuda or cuda:N"),
    ("reference={table: '9'}", "reference: no row of the paper's tables matches"),
    ("reference={tabel: '3'}", "reference: unknown paper-table column(s) ['tabel']"),
]


@pytest.mark.parametrize(("override", "message"), NON_FINITE + OTHER_BAD_VALUES)
def test_bad_values_are_rejected_naming_the_key_before_anything_runs(workdir, capsys, override,
                                                                     message):
    """Non-finite numbers anywhere, and other out-of-range values: one line, exit 2."""
    config = _write_config(workdir)
    err = _fails_cleanly(["run", str(config), "--out", "run", "--set", override], workdir,
                         capsys)
    assert message in err


def test_an_infinite_sigma_in_the_file_is_rejected_before_anything_runs(workdir, capsys):
    config = _write_config(workdir)
    config.write_text(config.read_text().replace("sigma: 0.5", "sigma: .inf"))
    err = _fails_cleanly(["run", str(config)], workdir, capsys)
    assert "method.sigma: must be a finite number, got inf" in err
    assert not (workdir / "runs").exists()


@pytest.mark.parametrize(("method", "override", "message"), [
    ("noisy_arl", "method.params.lambda_adv=x",
     "method.params.lambda_adv: expected a number, got 'x'"),
    ("noisy_arl", "method.params.lr=true", "method.params.lr: expected a number, got True"),
    ("maxent_arl", "method.params.embedding_dim=1.5",
     "method.params.embedding_dim: expected an integer, got 1.5"),
    ("disco", "method.params.proxy=3", "method.params.proxy: expected a string, got 3"),
    ("noisy_arl", "method.params.beta1=1.0", "method.params: beta1 must be in [0, 1)"),
    ("upper_bound", "method.params.lr=0", "method.params: lr must be > 0"),
])
def test_method_params_of_the_wrong_type_name_the_key(workdir, capsys, method, override,
                                                      message):
    config = _write_config(workdir)
    sigma = "0.5" if method == "noisy_arl" else "0"
    err = _fails_cleanly(["run", str(config), "--out", "run", "--set", f"method.name={method}",
                          "--set", f"method.sigma={sigma}", "--set", override], workdir, capsys)
    assert message in err


def test_switching_method_says_how_to_clear_the_other_methods_params(workdir, capsys):
    config = _write_config(workdir, method={"name": "noisy_arl", "split": 2,
                                            "params": {"lambda_adv": 0.1}})
    err = _fails_cleanly(["run", str(config), "--out", "run", "--set", "method.name=upper_bound"],
                         workdir, capsys)
    assert "method.params.lambda_adv: unknown key for upper_bound" in err
    assert "clear them with --set method.params={}" in err
    cleared = load_config(config, ["method.name=upper_bound", "method.params={}"])
    assert cleared.method.name == "upper_bound" and cleared.method.params == {}


def test_a_sigma_for_a_defence_without_noise_is_rejected_before_anything_runs(workdir, capsys):
    config = _write_config(workdir)
    err = _fails_cleanly(["run", str(config), "--out", "run", "--set", "method.name=disco"],
                         workdir, capsys)
    assert "method.sigma: disco has no noise module; leave sigma at 0" in err


@pytest.mark.parametrize(("override", "key"), [
    ("attacks.leakage.batch_size=0", "attacks.leakage.batch_size"),
    ("attacks.reconstruction.batch_size=-4", "attacks.reconstruction.batch_size"),
    ("train.eval_batch_size=0", "train.eval_batch_size"),
    ("attacks.reconstruction.epochs=0", "attacks.reconstruction.epochs"),
])
def test_sizes_and_epochs_must_be_positive_at_config_time(workdir, capsys, override, key):
    config = _write_config(workdir)
    err = _fails_cleanly(["run", str(config), "--out", "run", "--set", override], workdir,
                         capsys)
    assert f"{key}: must be >= 1" in err


def test_an_unknown_dataset_lists_the_registered_names(workdir, capsys):
    config = _write_config(workdir)
    err = _fails_cleanly(["run", str(config), "--set", "data.dataset=imagenet"], workdir, capsys)
    assert "data.dataset: unknown dataset 'imagenet' (known: celeba, fairface, cifar10, folder)" \
        in err


def test_dataset_choices_of_the_commands_are_the_registry(capsys):
    from noisyarl.data.registry import DATASETS

    parser = build_parser()
    for name in DATASETS:
        assert parser.parse_args(["data-info", "--dataset", name, "--root", "r"]).dataset == name
        assert parser.parse_args(["correlation", name, "a", "b", "--root", "r"]).dataset == name
    assert "invalid choice: 'imagenet'" in _usage_error(
        ["correlation", "imagenet", "a", "b", "--root", "r"], capsys)


@pytest.mark.parametrize("command", ["run", "compare", "sweep"])
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_cuda_without_a_gpu_fails_before_anything_is_written(workdir, capsys, monkeypatch,
                                                             command, device):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = _write_config(workdir, compare=[{"label": "ARL", "method": {"split": 2}}])
    err = _fails_cleanly([command, str(config), "--out", "out", "--set",
                          f"train.device={device}"], workdir, capsys)
    assert (f"train.device: {device} requested but torch.cuda.is_available() is False; "
            "use auto or cpu") in err


@pytest.mark.parametrize("command", ["synth-faces", "synth-objects"])
@pytest.mark.parametrize("layout",
                         ["out is a file", "parent is a file", "dataset folder is a file"])
def test_synth_commands_check_the_output_location_first(workdir, capsys, command, layout):
    (workdir / "taken").write_text("keep me")
    folder = "celeba" if command == "synth-faces" else "cifar-10-batches-py"
    out = {"out is a file": "taken", "parent is a file": "taken/sub",
           "dataset folder is a file": "data"}[layout]
    if layout == "dataset folder is a file":
        (workdir / "data").mkdir()
        (workdir / "data" / folder).write_text("keep me too")
    argv = [command, out] + (["--num-images", "4"] if command == "synth-faces" else
                             ["--num-train", "5", "--num-test", "1"])
    err = _fails_cleanly(argv, workdir, capsys)
    assert out in err and "file" in err


def test_run_into_a_path_under_a_file_fails_before_anything_runs(workdir, capsys):
    config = _write_config(workdir)
    (workdir / "taken").write_text("keep me")
    err = _fails_cleanly(["run", str(config), "--out", "taken/sub"], workdir, capsys)
    assert "--out taken/sub: cannot make this folder, taken is a file" in err


def test_a_read_only_output_folder_is_refused_before_generating(workdir, capsys, monkeypatch):
    locked = workdir / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    if os.name == "posix" and os.geteuid() == 0:  # root may write anyway: show what a user sees
        real_access = os.access
        monkeypatch.setattr(os, "access", lambda path, mode: Path(path).resolve() != locked
                            and real_access(path, mode))
    try:
        err = _fails_cleanly(["synth-faces", "locked", "--num-images", "4"], workdir, capsys)
    finally:
        locked.chmod(0o755)
    assert "locked" in err and "permission denied" in err


@pytest.mark.parametrize(("error", "reason"), [
    (PermissionError(errno.EACCES, "Permission denied", "/data/out/x.jpg"), "permission denied"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "/data/out/x.jpg"), "a file is in"),
    (IsADirectoryError(errno.EISDIR, "Is a directory", "/data/out/x.jpg"), "is a folder"),
    (OSError(errno.ENOSPC, "No space left on device", "/data/out/x.jpg"), "no space left"),
])
def test_file_system_errors_become_one_line_naming_the_path(workdir, capsys, monkeypatch, error,
                                                            reason):
    import noisyarl.synthetic.faces

    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr(noisyarl.synthetic.faces, "synthesize", fail)
    assert main(["synth-faces", "out", "--num-images", "4"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: /data/out/x.jpg: {reason}") and err.count("\n") == 1


def test_other_os_errors_keep_their_traceback(workdir, monkeypatch):
    import noisyarl.synthetic.faces

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, "Input/output error", "/dev/broken")

    monkeypatch.setattr(noisyarl.synthetic.faces, "synthesize", fail)
    with pytest.raises(OSError, match="Input/output error"):
        main(["synth-faces", "out", "--num-images", "4"])


@pytest.mark.parametrize(("argv", "message"), [
    (["data-info", "--dataset", "celeba", "--root", "r", "--image-size", "0"],
     "expected an integer >= 16"),
    (["data-info", "--dataset", "celeba", "--root", "r", "--image-size", "-3"],
     "expected an integer >= 16"),
    (["data-info", "--dataset", "celeba", "--root", "r", "--image-size", "big"],
     "expected an integer, got 'big'"),
    (["synth-faces", "out", "--image-size", "20"], "expected an integer >= 32"),
    (["synth-objects", "out", "--num-train", "3"], "expected an integer >= 5"),
    (["latency", "--method", "all", "--split", "7"], "invalid choice: 7"),
])
def test_bad_numbers_on_the_command_line_are_usage_errors(workdir, capsys, argv, message):
    assert message in _usage_error(argv, capsys)
    assert not any(workdir.iterdir())


def _finished_rows(out: Path, run_names: list[str]) -> None:
    for name in run_names:
        (out / "runs" / name).mkdir(parents=True)
        (out / "runs" / name / "metrics.json").write_text("{}")


def test_compare_into_a_finished_folder_names_resume_before_decoding(workdir, capsys,
                                                                     monkeypatch):
    import noisyarl.runners.executor

    monkeypatch.setattr(noisyarl.runners.executor, "load_data",
                        lambda *a, **k: pytest.fail("decoded data before checking --out"))
    config = _write_config(workdir, compare=[{"label": "ARL", "method": {"split": 2}}])
    _finished_rows(workdir / "cmp", ["err-noisy_arl-K2-s0-seed0"])
    err = _fails_cleanly(["compare", str(config), "--out", "cmp"], workdir, capsys)
    assert "choose a new --out, or add --resume" in err


def test_sweep_into_a_finished_folder_names_resume_before_decoding(workdir, capsys, monkeypatch):
    import noisyarl.runners.executor

    monkeypatch.setattr(noisyarl.runners.executor, "load_data",
                        lambda *a, **k: pytest.fail("decoded data before checking --out"))
    config = _write_config(workdir)
    (workdir / "sw").mkdir()
    (workdir / "sw" / "sweep.json").write_text("{}")
    err = _fails_cleanly(["sweep", str(config), "--out", "sw", "--sigma", "1"], workdir, capsys)
    assert "choose a new --out, or add --resume" in err


def test_sweep_rejects_a_repeated_sigma_before_decoding(workdir, capsys):
    config = _write_config(workdir)
    err = _fails_cleanly(["sweep", str(config), "--out", "sw", "--sigma", "1", "1.0"], workdir,
                         capsys)
    assert "sweep.sigmas: every σ must differ" in err


def test_help_describes_the_tool_and_its_common_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "usage: noisyarl [-h] COMMAND ..." in out
    assert "Noisy adversarial representation learning" in out
    assert "noisyarl COMMAND --help" in out
    assert "noisyarl demo --quick" in out and "noisyarl run CONFIG.yaml" in out
    assert "``" not in out  # no developer docstring markup
