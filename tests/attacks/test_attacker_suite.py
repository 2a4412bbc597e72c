"""The worst-case attacker suite: every registered attacker trains on z and is scored."""

from __future__ import annotations

import math

import pytest
import torch

from noisyarl.attacks.attackers import ATTACKERS, AttackJob, run_attacker
from noisyarl.attacks.features import z_shape_of
from noisyarl.attacks.knn import knn_outputs
from noisyarl.attacks.suite import summarise_worst_case
from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.runners.runs import load_run
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))


@pytest.fixture(scope="module")
def trained_run(tiny_run_dir, tiny_celeba_root):
    from noisyarl.builders import load_data

    loaded = load_run(tiny_run_dir)
    splits = load_data(loaded.config, progress=False)
    sizes = {"train": 96, "valid": 48, "test": 48}  # keep the six trainings fast
    return loaded, {name: split.subset(torch.arange(min(sizes[name], len(split))))
                    for name, split in splits.items()}


@pytest.mark.parametrize("name", list(ATTACKERS))
def test_each_attacker_trains_and_is_scored(trained_run, name):
    loaded, splits = trained_run
    client = loaded.defence.client
    job = AttackJob(defence=loaded.defence, client=client, splits=splits, task=loaded.private,
                    context=CPU, z_shape=z_shape_of(client, splits["train"], CPU), epochs=1,
                    batch_size=32)
    result = run_attacker(name, job)
    for score in (result.test_best, result.test_at_best_valid, result.test_last):
        assert 0.0 <= score <= 100.0 and math.isfinite(score)
    assert result.test_best >= result.test_at_best_valid  # best test is an upper envelope
    assert result.history, "every attacker records what it measured"


def test_an_unknown_attacker_is_named_in_the_error(trained_run):
    loaded, splits = trained_run
    job = AttackJob(defence=loaded.defence, client=loaded.defence.client, splits=splits,
                    task=loaded.private, context=CPU, z_shape=(1,), epochs=1)
    with pytest.raises(ValueError, match="unknown attacker 'svm'.*knn"):
        run_attacker("svm", job)


def test_knn_votes_the_majority_of_the_nearest_training_samples():
    task = Task("Male", LabelInfo(kind="binary"))
    train = torch.tensor([[0.0], [0.1], [0.2], [5.0], [5.1]])
    labels = torch.tensor([0, 0, 1, 1, 1])
    outputs = knn_outputs(train, labels, torch.tensor([[0.05], [4.9]]), task, neighbours=3)
    assert outputs.reshape(-1).gt(0).tolist() == [False, True]
    regression = Task("y", LabelInfo(kind="regression", dim=1))
    values = torch.tensor([[1.0], [3.0], [5.0], [100.0], [100.0]])
    mean = knn_outputs(train, values, torch.tensor([[0.0]]), regression, neighbours=3)
    assert mean.tolist() == [[3.0]]


def test_the_worst_case_is_the_strongest_attacker_and_delta_uses_it():
    task = Task("Male", LabelInfo(kind="binary"))
    attackers = {
        "proxy": {"test_at_best_valid": 60.0, "test_best": 64.0},
        "mlp": {"test_at_best_valid": 71.0, "test_best": 72.0},
        "knn": {"test_at_best_valid": 55.0, "test_best": 75.0},
    }
    worst = summarise_worst_case(attackers, task, test_utility=90.0,
                                 paper_leakage={"test_best": 64.0})
    assert (worst["attacker"], worst["privacy"], worst["delta"]) == ("mlp", 71.0, 19.0)
    assert (worst["attacker_best_test_epoch"], worst["privacy_best_test_epoch"]) == ("knn", 75.0)
    assert worst["paper_delta"] == 26.0
    raw = summarise_worst_case(attackers, task, 90.0, None, obfuscates=False)
    assert raw["delta"] is None and raw["paper_privacy"] is None
