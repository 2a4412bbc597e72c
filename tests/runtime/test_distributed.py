"""Data parallelism: N gloo processes on CPU follow one process on the combined batch.

The adversarial update (several optimisers, reversed gradients) is averaged over ranks inside
``StepContext.step`` and batch norm uses the statistics of the global batch
(``noisyarl.runtime.distributed``); these tests hold the training loop to that claim.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import yaml

from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods import DefenceSpec, build_defence, method_params
from noisyarl.runtime import StepContext
from noisyarl.runtime.distributed import (
    DistributedEnv,
    SyncedBatchNorm2d,
    convert_batchnorm,
    current_env,
)
from noisyarl.training.loop import ScalarLog
from noisyarl.utils.io import read_json
from noisyarl.utils.seeding import epoch_generator

BINARY = LabelInfo(kind="binary", num_classes=2)
GLOBAL_BATCH = 8
STEPS = 2
WORLD_SIZE = 2


def _split(seed: int = 0, count: int = GLOBAL_BATCH * STEPS, size: int = 16) -> ImageSplit:
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8, generator=generator)
    labels = {name: torch.randint(0, 2, (count,), generator=generator)
              for name in ("utility", "private")}
    return ImageSplit(images=images, labels=labels,
                      label_info={"utility": BINARY, "private": BINARY})


def _train(method: str, params: dict, context: StepContext) -> tuple[dict, dict]:
    """One epoch of ``method`` from seed 0: STEPS shuffled, augmented global batches of
    GLOBAL_BATCH rows (each rank steps on its shard), exactly as ``train_one_epoch`` feeds them.

    In float64: Adam divides every gradient coordinate by its own running scale, so float32
    rounding differences in near-zero gradients (two correct batch-norm implementations round
    differently) become lr-sized steps; in float64 the comparison is sharp.
    Returns (state dict, the epoch's reduced scalars).
    """
    utility, private = Task("utility", BINARY), Task("private", BINARY)
    spec = DefenceSpec(utility=utility, private=private, split=2, sigma=0.0, noise=True,
                       params=method_params(method, params), image_size=16, cifar_stem=True)
    torch.manual_seed(0)
    defence = context.prepare_module(build_defence(method, spec).double())
    optimizers = defence.configure_optimizers()
    env = context.distributed
    log = ScalarLog(env)
    defence.train()
    for images, labels in iterate_batches(_split(), GLOBAL_BATCH, shuffle=True, augment=True,
                                          generator=epoch_generator(3, 1), drop_last=True,
                                          rank=env.rank, world_size=env.world_size):
        values = defence.train_step(images.double(), labels["utility"], labels["private"],
                                    optimizers, context)
        log.add(values, images.shape[0])
    return {k: v.detach().clone() for k, v in defence.state_dict().items()}, log.means()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, port: int, method: str, params: dict, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                           world_size=WORLD_SIZE)
    try:
        context = StepContext(torch.device("cpu"))
        assert context.distributed == DistributedEnv(rank, rank, WORLD_SIZE)
        state, scalars = _train(method, params, context)
        torch.save({"state": state, "scalars": scalars}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


# DISCO's pruner runs a second batch-norm pass with frozen running statistics (an isinstance
# check on BatchNorm2d); noisy ARL (sigma = 0, plain ARL) is the paper's update. Defences with
# random draws inside the model (noise sigma > 0, MaxEnt's dropout) differ by those draws only.
@pytest.mark.parametrize(("method", "params"), [
    ("noisy_arl", {}), pytest.param("disco", {}, marks=pytest.mark.slow)])
def test_two_gloo_processes_end_with_the_parameters_of_one_process(method, params, tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each worker; more threads than free cores thrash
    try:
        expected, expected_scalars = _train(method, params, StepContext(torch.device("cpu")))
    finally:
        torch.set_num_threads(threads)
    out = str(tmp_path / "state")
    mp.spawn(_worker, args=(_free_port(), method, params, out), nprocs=WORLD_SIZE, join=True)
    ranks = [torch.load(f"{out}.{rank}", weights_only=True) for rank in range(WORLD_SIZE)]

    for name, value in expected.items():
        # every rank holds the same weights, and they are one process's weights
        torch.testing.assert_close(ranks[1]["state"][name], ranks[0]["state"][name],
                                   rtol=0, atol=0, msg=name)
        if value.is_floating_point():
            torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-9, atol=1e-10,
                                       msg=lambda m, name=name: f"{name}: {m}")
        else:
            assert torch.equal(ranks[0]["state"][name], value), name
    # the parameters moved, so the comparison is not of two untouched initialisations
    assert any(not torch.equal(value, _initial(method, params)[name])
               for name, value in expected.items() if value.is_floating_point())
    # logged scalars are reduced over ranks: the same epoch means as one process
    # (read back in float32)
    assert ranks[0]["scalars"] == pytest.approx(expected_scalars, rel=1e-6, abs=1e-7)


def _initial(method: str, params: dict) -> dict:
    spec = DefenceSpec(utility=Task("utility", BINARY), private=Task("private", BINARY),
                       split=2, sigma=0.0, noise=True, params=method_params(method, params),
                       image_size=16, cifar_stem=True)
    torch.manual_seed(0)
    return build_defence(method, spec).state_dict()


def test_converted_batchnorm_keeps_type_checks_and_state_dict_keys():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4),
                                torch.nn.Sequential(torch.nn.BatchNorm1d(4)))
    keys = list(model.state_dict())
    convert_batchnorm(model)
    assert isinstance(model[1], SyncedBatchNorm2d) and isinstance(model[1], torch.nn.BatchNorm2d)
    assert isinstance(model[2][0], torch.nn.BatchNorm1d)
    assert list(model.state_dict()) == keys
    # without a process group it is the plain batch norm
    images = torch.randn(6, 3, 8, 8)
    reference = torch.nn.BatchNorm2d(4)
    torch.testing.assert_close(model[1](model[0](images)), reference(model[0](images)))


def test_scalar_log_without_ranks_averages_steps_and_samples():
    log = ScalarLog(current_env())
    log.add({"utility_loss": torch.tensor(1.0), "utility_correct": torch.tensor(3)}, 4)
    log.add({"utility_loss": torch.tensor(3.0), "utility_correct": torch.tensor(1)}, 4)
    assert log.means() == {"utility_loss": 2.0, "utility_score": 0.5}


def _torchrun_config(root) -> dict:
    return {
        "name": "ddp",
        "seed": 5,
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40, "max_train": 128},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5},
        "train": {"epochs": 1, "batch_size": 32, "progress": False, "device": "cpu"},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32}},
    }


@pytest.mark.slow
def test_torchrun_two_processes_run_an_experiment_and_rank_zero_writes_it(tiny_celeba_root,
                                                                           tmp_path):
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump(_torchrun_config(tiny_celeba_root)))
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
               "--master_port", str(_free_port()), "-m", "noisyarl.cli", "run",
               str(config_path), "--out", str(out)]
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]

    metrics = read_json(out / "metrics.json")
    assert metrics["world_size"] == 2
    assert 0 <= metrics["utility"] <= 100 and 0 <= metrics["privacy"] <= 100
    assert metrics["samples"]["train"] == 128
    for name in ("config.yaml", "report.md", "checkpoints/trained.pt", "checkpoints/best.pt",
                 "attacks/leakage.json", "attacks/reconstruction.json"):
        assert (out / name).is_file(), name
    assert not (out / "checkpoints" / "last.pt").exists()  # dropped once the run finished
    # one set of TensorBoard event files: only rank 0 logs
    assert len(list((out / "tb").glob("events.out.tfevents.*"))) == 1

    # --resume of the finished run under torchrun leaves it as it was
    before = (out / "metrics.json").read_bytes(), (out / "metrics.json").stat().st_mtime_ns
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True,
                             timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert ((out / "metrics.json").read_bytes(),
            (out / "metrics.json").stat().st_mtime_ns) == before
