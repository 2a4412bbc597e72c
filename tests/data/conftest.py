"""Fixtures of the data tests: tiny generated CelebA/FairFace roots and their ground truth."""

from __future__ import annotations

import shutil

import pytest

from noisyarl.synthetic.faces import SynthConfig, generate_faces

# 40 px wide: CelebA-format images are 40 x 49 px (centre crop: top offset 4, side 40).
CELEBA_CONFIG = SynthConfig(num_images=48, image_size=40, seed=11)
FAIRFACE_CONFIG = SynthConfig(num_images=48, image_size=40, seed=12)


@pytest.fixture(scope="session")
def celeba_root(generated_datasets):
    """A generated CelebA root (``ROOT/celeba/...``) of CELEBA_CONFIG; do not modify it."""
    return generated_datasets.faces("celeba", CELEBA_CONFIG)


@pytest.fixture(scope="session")
def celeba_truth():
    """What the generator drew for CELEBA_CONFIG (image i is file i + 1)."""
    return generate_faces(CELEBA_CONFIG, layout="celeba")


@pytest.fixture(scope="session")
def fairface_root(generated_datasets):
    """A generated FairFace root (``ROOT/fairface/...``) of FAIRFACE_CONFIG; do not modify it."""
    return generated_datasets.faces("fairface", FAIRFACE_CONFIG)


@pytest.fixture(scope="session")
def fairface_truth():
    """What the generator drew for FAIRFACE_CONFIG (train files, then val files)."""
    return generate_faces(FAIRFACE_CONFIG, layout="fairface")


@pytest.fixture
def celeba_copy(celeba_root, tmp_path):
    """A private copy of the CelebA root that a test may damage."""
    shutil.copytree(celeba_root, tmp_path / "root")
    return tmp_path / "root"


@pytest.fixture
def fairface_copy(fairface_root, tmp_path):
    """A private copy of the FairFace root that a test may damage."""
    shutil.copytree(fairface_root, tmp_path / "root")
    return tmp_path / "root"
