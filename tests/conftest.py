"""Shared fixtures: small generated datasets in the real on-disk formats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from noisyarl.synthetic.faces import SynthConfig, write_celeba, write_fairface
from noisyarl.synthetic.objects import write_cifar10

# The suite runs on two pytest-xdist workers (pyproject's addopts), one thread each, on the
# 2-core CI machine; a single process (-n 0) takes both cores. Processes a test starts (the
# CLI, torchrun, the service) inherit the worker's one thread through OMP_NUM_THREADS.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


class GeneratedDatasets:
    """The one factory of generated datasets: each distinct request is generated once per
    session, in the real on-disk format, under pytest's temporary folder.

    ``faces("celeba", SynthConfig(...))`` -> a root holding ``celeba/`` (or ``fairface/``);
    ``objects(num_train, num_test, seed)`` -> a root holding ``cifar-10-batches-py/``.
    Treat every root as read-only (copy it to damage it).
    """

    def __init__(self, tmp_path_factory) -> None:
        self._tmp = tmp_path_factory
        self._roots: dict[tuple, Path] = {}

    def faces(self, layout: str, config: SynthConfig) -> Path:
        key = ("faces", layout, repr(config))  # SynthConfig is not hashable
        if key not in self._roots:
            root = self._tmp.mktemp(f"{layout}-{config.num_images}-{config.seed}")
            writer = {"celeba": write_celeba, "fairface": write_fairface}[layout]
            writer(root, config)
            self._roots[key] = root
        return self._roots[key]

    def objects(self, num_train: int, num_test: int, seed: int = 0) -> Path:
        key = ("objects", num_train, num_test, seed)
        if key not in self._roots:
            root = self._tmp.mktemp(f"cifar-{num_train}-{seed}")
            write_cifar10(root, num_train=num_train, num_test=num_test, seed=seed)
            self._roots[key] = root
        return self._roots[key]


@pytest.fixture(scope="session")
def generated_datasets(tmp_path_factory) -> GeneratedDatasets:
    """The session's :class:`GeneratedDatasets` factory."""
    return GeneratedDatasets(tmp_path_factory)


@pytest.fixture(scope="session")
def tiny_celeba_root(generated_datasets):
    """A generated CelebA-format dataset: 360 faces, 48 px wide (root holding ``celeba/``)."""
    return generated_datasets.faces("celeba", SynthConfig(num_images=360, image_size=48, seed=3))


@pytest.fixture(scope="session")
def small_celeba_root(generated_datasets):
    """A larger generated CelebA-format dataset for learning tests: 1600 faces, 48 px wide."""
    return generated_datasets.faces("celeba", SynthConfig(num_images=1600, image_size=48, seed=5))


@pytest.fixture(scope="session")
def tiny_fairface_root(generated_datasets):
    """A generated FairFace-format dataset: 240 faces, 40 px (root holding ``fairface/``)."""
    return generated_datasets.faces("fairface",
                                    SynthConfig(num_images=240, image_size=40, seed=4))


@pytest.fixture(scope="session")
def tiny_cifar_root(generated_datasets):
    """Generated objects in the CIFAR-10 layout (root holding ``cifar-10-batches-py/``)."""
    return generated_datasets.objects(num_train=200, num_test=50, seed=0)


def tiny_run_config(root, method: str = "noisy_arl", sigma: float = 0.5, size: int = 40):
    """A one-epoch experiment on ``tiny_celeba_root`` (utility Smiling, private Male, RN18_2)."""
    from noisyarl.config import config_from_dict

    return config_from_dict({
        "name": "tiny",
        "data": {"dataset": "celeba", "root": str(root), "image_size": size},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": method, "split": 2, "sigma": sigma},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32}},
    })


@pytest.fixture(scope="session")
def tiny_run_dir(tiny_celeba_root, tmp_path_factory):
    """A finished one-epoch noisy-ARL run (σ = 0.5) on ``tiny_celeba_root``; treat as read-only."""
    from noisyarl.runners.experiment import run_experiment

    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    run_experiment(tiny_run_config(tiny_celeba_root), run_dir)
    return run_dir
