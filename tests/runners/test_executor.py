"""A study's runs on the serial executor or as Ray tasks: the same metrics, the same run
directories, resume re-trains nothing, a failed task names its run."""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch

from noisyarl.config import ConfigError, ExecutorConfig, apply_overrides, config_from_dict
from noisyarl.runners.compare import run_comparison
from noisyarl.runners.executor import RunFailedError, RunJob, execute
from noisyarl.runners.runs import training_part
from noisyarl.utils.io import read_json

RAY = ExecutorConfig(name="ray", cpus_per_run=1)


def _config(root, **values):
    """Two seeds of one tiny noisy-ARL row: a 2-run grid of a few seconds per run."""
    return config_from_dict({
        "name": "ex",
        "seeds": [0, 1],
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40,
                 "max_train": 32, "max_valid": 16, "max_test": 16},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "train": {"epochs": 1, "batch_size": 16, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 16},
                    "reconstruction": {"enabled": False}, "noise_draws": 1},
        "compare": [{"label": "noisy", "method": {"name": "noisy_arl", "split": 1,
                                                 "sigma": 0.5}}],
        **values,
    })


@pytest.fixture
def one_thread():
    """One torch thread, as every Ray task of ``cpus_per_run: 1`` has, so numerics match."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs, shut down after the module's tests."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


def _run_metrics(out):
    return {path.parent.name: read_json(path) for path in sorted(out.glob("runs/*/metrics.json"))}


def _numbers(metrics):
    return {key: value for key, value in metrics.items()
            if isinstance(value, int | float) and not isinstance(value, bool)}


def test_ray_runs_a_grid_like_the_serial_executor_and_resume_retrains_nothing(
        local_ray, tiny_celeba_root, tmp_path, one_thread):
    config = _config(tiny_celeba_root)
    serial_rows = run_comparison(config, tmp_path / "serial")
    ray_rows = run_comparison(dataclasses.replace(config, executor=RAY), tmp_path / "ray")

    serial, ray = _run_metrics(tmp_path / "serial"), _run_metrics(tmp_path / "ray")
    assert list(ray) == list(serial) == [f"ex-noisy_arl-K1-s0.5-seed{seed}" for seed in (0, 1)]
    for name in serial:
        expected, got = _numbers(serial[name]), _numbers(ray[name])
        assert got.keys() == expected.keys()
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-9), name
        # the run itself does not know which executor ran it
        assert ((tmp_path / "ray/runs" / name / "config.yaml").read_text()
                == (tmp_path / "serial/runs" / name / "config.yaml").read_text())
    assert [row["utility"] for row in ray_rows] == pytest.approx(
        [row["utility"] for row in serial_rows])

    finished = {path: path.stat().st_mtime_ns for path in tmp_path.glob("ray/runs/*/*")}
    again = run_comparison(dataclasses.replace(config, executor=RAY), tmp_path / "ray",
                           resume=True)
    assert again == ray_rows
    assert {path: path.stat().st_mtime_ns for path in finished} == finished  # nothing re-run


def test_a_failed_ray_task_names_its_run(local_ray, tiny_celeba_root, tmp_path):
    config = _config(tiny_celeba_root).with_seed(0)
    missing = dataclasses.replace(config, data=dataclasses.replace(config.data,
                                                                   root=str(tmp_path / "none")))
    with pytest.raises(RunFailedError, match=r"1 of 1 runs failed on Ray: "
                                             r"ex-noisy_arl-K3-s0-seed0 \(DatasetError: "):
        execute([RunJob(missing, tmp_path / "run")], RAY)


def test_without_ray_the_error_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    config = _config(tmp_path).with_seed(0)
    with pytest.raises(ConfigError, match=r"pip install 'noisyarl\[ray\]'"):
        execute([RunJob(config, tmp_path / "run")], RAY)


def test_executor_settings_are_no_training_settings(tmp_path):
    serial = _config(tmp_path).with_seed(0)
    ray = apply_overrides(serial, ["executor.name=ray", "executor.address=auto"])
    assert ray.executor == ExecutorConfig(name="ray", address="auto")
    assert ray.run_name() == serial.run_name()
    assert training_part(ray) == training_part(serial)
    assert RunJob(ray, tmp_path).run_config() == serial  # every run gets the default executor


@pytest.mark.parametrize(("executor", "message"), [
    ({"name": "dask"}, "executor.name: 'dask' is not one of 'serial', 'ray'"),
    ({"cpus_per_run": 0}, "executor.cpus_per_run: must be > 0"),
    ({"gpus_per_run": -1}, "executor.gpus_per_run: must be >= 0"),
    ({"adress": "auto"}, "executor.adress: unknown key"),
])
def test_bad_executor_settings_name_the_key(tmp_path, executor, message):
    with pytest.raises(ConfigError, match=message):
        _config(tmp_path, executor=executor)


def test_ray_on_cuda_needs_a_gpu_per_run(tmp_path):
    with pytest.raises(ConfigError, match="executor.gpus_per_run: train.device is cuda"):
        _config(tmp_path, executor={"name": "ray"}, train={"device": "cuda"})
    assert _config(tmp_path, executor={"name": "ray", "gpus_per_run": 0.5},
                   train={"device": "cuda"}).executor.gpus_per_run == 0.5
