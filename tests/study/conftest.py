"""A small hand-made study (no training): two methods x three images, binary question."""

from __future__ import annotations

import pytest
import torch

from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.study.build import question_for, write_study

#: Row i of every method shows an image whose true private class is LABELS[i].
LABELS = torch.tensor([1, 0, 1])
METHODS = ("noisy_arl K=2 σ=0", "noisy_arl K=2 σ=4")


def male_task() -> Task:
    return Task("Male", LabelInfo("binary", 2, class_names=("not Male", "Male")))


@pytest.fixture
def toy_study(tmp_path):
    """A study folder with 6 images (3 per method) and 3 participant codes; returns the folder."""
    generator = torch.Generator().manual_seed(0)
    reconstructions = {method: torch.rand(3, 3, 16, 16, generator=generator)
                       for method in METHODS}
    write_study(tmp_path / "study", question_for(male_task()), reconstructions, LABELS,
                num_classes=2, participants=3, details={"private_label": "Male",
                                                        "class_names": ["not Male", "Male"]})
    return tmp_path / "study"


@pytest.fixture
def toy_codes(toy_study) -> list[str]:
    """The toy study's three participant codes."""
    return (toy_study / "participant_codes.txt").read_text().split()
