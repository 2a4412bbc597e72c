"""Shared fixtures: small generated datasets in the real on-disk formats."""

from __future__ import annotations

import pytest
import torch

from noisyarl.data.synth import SynthConfig, write_celeba

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
