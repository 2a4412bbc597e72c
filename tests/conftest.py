"""Shared fixtures: small generated datasets in the real on-disk formats."""

from __future__ import annotations

import pytest
import torch

from noisyarl.synthetic.faces import SynthConfig, write_celeba, write_fairface

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def tiny_celeba_root(tmp_path_factory):
    """A generated CelebA-format dataset: 360 faces, 48 px wide (root holding ``celeba/``)."""
    root = tmp_path_factory.mktemp("tiny-celeba")
    write_celeba(root, SynthConfig(num_images=360, image_size=48, seed=3))
    return root


@pytest.fixture(scope="session")
def small_celeba_root(tmp_path_factory):
    """A larger generated CelebA-format dataset for learning tests: 1600 faces, 48 px wide."""
    root = tmp_path_factory.mktemp("small-celeba")
    write_celeba(root, SynthConfig(num_images=1600, image_size=48, seed=5))
    return root


@pytest.fixture(scope="session")
def tiny_fairface_root(tmp_path_factory):
    """A generated FairFace-format dataset: 240 faces, 40 px (root holding ``fairface/``)."""
    root = tmp_path_factory.mktemp("tiny-fairface")
    write_fairface(root, SynthConfig(num_images=240, image_size=40, seed=4))
    return root


@pytest.fixture(scope="session")
def tiny_cifar_root(tmp_path_factory):
    """Generated objects in the CIFAR-10 layout (root holding ``cifar-10-batches-py/``)."""
    from noisyarl.synthetic.objects import write_cifar10

    root = tmp_path_factory.mktemp("tiny-cifar")
    write_cifar10(root, num_train=200, num_test=50, seed=0)
    return root


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
