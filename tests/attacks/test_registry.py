"""Every registered attack runs through the one interface: ``ATTACKS[name]().run(target,
settings)`` returns an ``AttackResult`` with a learning curve, table cells and a JSON round
trip (the timm pattern: one test looping over the registry)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from noisyarl.attacks import ATTACKS, Attack, AttackResult, AttackSettings, AttackTarget, ZView
from noisyarl.builders import untrained_defence
from noisyarl.data.registry import load_splits
from noisyarl.data.tasks import Task
from noisyarl.runtime import StepContext

CPU = StepContext(torch.device("cpu"))


@pytest.fixture(scope="module")
def target(tiny_celeba_root) -> AttackTarget:
    """A noisy RN18_2 client (σ = 0.5) on the tiny generated faces (with identities)."""
    splits = load_splits("celeba", tiny_celeba_root, 40)
    torch.manual_seed(0)
    defence = untrained_defence("noisy_arl", 40, split=2, sigma=0.5)
    view = ZView.of(defence.client, defence.noise_module(), CPU, splits["test"])
    return AttackTarget(view=view, splits=splits,
                        task=Task("Male", splits["train"].label_info["Male"]), image_size=40,
                        proxy=defence.make_attacker)


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_registered_attack_runs_through_the_interface(target, name):
    attack = ATTACKS[name]()
    assert isinstance(attack, Attack) and attack.name == name
    result = attack.run(target, AttackSettings(max_epochs=2, patience=1, batch_size=32,
                                               noise_draws=2))
    assert isinstance(result, AttackResult) and result.attack == name
    assert 1 <= result.curve.epochs_run <= result.curve.ceiling
    assert result.curve.best_epoch in [record["epoch"] for record in result.curve.records]
    cells = result.cells()
    assert cells["epochs"] == result.curve.epochs_run
    assert all(value is None or isinstance(value, bool) or math.isfinite(value)
               for value in cells.values() if not isinstance(value, str))
    saved = json.loads(json.dumps(result.to_dict()))
    assert type(result).from_dict(saved).to_dict() == result.to_dict()


def test_attack_names_are_unique_and_match_their_keys():
    assert all(attack.name == name for name, attack in ATTACKS.items())
