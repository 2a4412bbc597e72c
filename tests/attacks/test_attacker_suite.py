"""The worst-case attacker suite: every registered attacker trains on z and is scored."""

from __future__ import annotations

import math

import pytest
import torch

from noisyarl.attacks.attackers import ATTACKERS, run_attacker
from noisyarl.attacks.base import AttackSettings, LearningCurve
from noisyarl.attacks.knn import knn_outputs
from noisyarl.attacks.leakage import ChanceFigures, LeakageResult
from noisyarl.attacks.suite import summarise_worst_case
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.runners.runs import load_run
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))
ONE_EPOCH = AttackSettings(max_epochs=1, batch_size=32, noise_draws=2)


def target_of(loaded, splits) -> AttackTarget:
    defence = loaded.defence
    view = ZView.of(defence.client, defence.noise_module(), CPU, splits["test"])
    return AttackTarget(view=view, splits=splits, task=loaded.private, image_size=40,
                        proxy=defence.make_attacker)


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
    result = run_attacker(name, target_of(loaded, splits), ONE_EPOCH)
    for score in (result.paper, result.test, result.last, *result.test_draws):
        assert 0.0 <= score <= 100.0 and math.isfinite(score)
    assert result.attacker == name and result.curve.records, "it records what it measured"
    assert len(result.test_draws) == 2, "the noisy client is scored over two noise draws"
    assert result.chance.chance == loaded.private.chance_level(
        splits["test"].labels[loaded.private.label])
    assert LeakageResult.from_dict(result.to_dict()) == result


def test_an_unknown_attacker_is_named_in_the_error(trained_run):
    loaded, splits = trained_run
    with pytest.raises(ValueError, match="unknown attacker 'svm'.*knn"):
        run_attacker("svm", target_of(loaded, splits), ONE_EPOCH)


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


def attacker(name: str, test: float, paper: float) -> LeakageResult:
    return LeakageResult(
        attack="leakage", curve=LearningCurve(), attacker=name, metric="accuracy",
        higher_is_better=True, test=test, test_sd=0.0, test_draws=[test], valid=test,
        paper=paper, paper_epoch=1, last=test,
        chance=ChanceFigures(chance=50.0, n_test=1000, learned=True, advantage=test - 50.0))


def test_the_worst_case_is_the_strongest_attacker_and_delta_uses_it():
    task = Task("Male", LabelInfo(kind="binary"))
    attackers = {"proxy": attacker("proxy", 60.0, 64.0), "mlp": attacker("mlp", 71.0, 72.0),
                 "knn": attacker("knn", 55.0, 75.0)}
    worst = summarise_worst_case(attackers, task, test_utility=90.0, paper=attackers["proxy"])
    assert (worst.attacker, worst.privacy, worst.delta) == ("mlp", 71.0, 19.0)
    assert (worst.attacker_best_test_epoch, worst.privacy_best_test_epoch) == ("knn", 75.0)
    assert worst.paper_delta == 26.0
    raw = summarise_worst_case(attackers, task, 90.0, None, obfuscates=False)
    assert raw.delta is None and raw.paper_privacy is None
