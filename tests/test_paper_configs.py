"""Every paper config (configs/paper/) runs unchanged on generated data of its format, at CI
size: only the data root and the sizes are overridden, never the methods, tasks or σ."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from noisyarl.config import load_config
from noisyarl.runners.compare import run_comparison
from noisyarl.runners.sweep import run_sigma_sweep

PAPER = sorted((Path(__file__).parents[1] / "configs" / "paper").glob("*.yaml"))

# Two training steps and one attack epoch per row, one test pass: the configs are checked
# for running, not for their figures (those are the benchmarks'). Faces at 40 px take the
# ImageNet stem (at 32 px and below the CIFAR stem keeps full resolution, 16x the work);
# CIFAR-10 stays at its native 32 px.
IMAGE_SIZE = {"cifar10": 32, "celeba": 40, "fairface": 40}
CI_SIZE = [
    "data.max_train=32", "data.max_valid=16", "data.max_test=16",
    "data.cache_dir=null", "train.epochs=1", "train.batch_size=16", "train.progress=false",
    "attacks.leakage.epochs=1", "attacks.leakage.batch_size=16",
    "attacks.reconstruction.epochs=1", "attacks.reconstruction.batch_size=16",
    "attacks.noise_draws=1",
]


@pytest.fixture
def generated_roots(tiny_celeba_root, tiny_fairface_root, tiny_cifar_root):
    return {"celeba": tiny_celeba_root, "fairface": tiny_fairface_root,
            "cifar10": tiny_cifar_root}


@pytest.mark.parametrize("path", PAPER, ids=[p.stem for p in PAPER])
def test_paper_config_runs_on_generated_data(path, generated_roots, tmp_path):
    dataset = load_config(path).data.dataset
    config = load_config(path, [f"data.root={generated_roots[dataset]}",
                                f"data.image_size={IMAGE_SIZE[dataset]}", *CI_SIZE])
    if config.compare:
        rows = run_comparison(config, tmp_path)
        assert [row["method"] for row in rows] == [entry.label for entry in config.compare]
        with open(tmp_path / "table.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == len(config.compare)
    else:
        result = run_sigma_sweep(config, tmp_path, config.sweep.sigmas[:2])
        assert len(result.rows) == 2
    assert (tmp_path / "report.md").is_file()
