"""Every registered attack runs through the one interface: ``ATTACKS[name](options).run(target,
settings)`` returns its ``result_type`` with a learning curve (empty for a model-free attack),
table cells and a JSON round trip (the timm pattern: one test looping over the registry)."""

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
#: Options that keep an attack's own budget small on the tiny data (others: their defaults).
QUICK_OPTIONS = {
    "white_box": {"steps": 3, "valid_images": 4, "test_images": 8, "tv_weights": [0.0, 1.0]},
    "black_box": {"steps": 3, "valid_images": 4, "test_images": 8, "tv_weights": [0.0, 1.0],
                  "fraction": 0.25},
    "distance_correlation": {"chunk_size": 16},
}


def quick_attack(name: str) -> Attack:
    attack_type = ATTACKS[name]
    values = QUICK_OPTIONS.get(name)
    return attack_type(attack_type.options_type(**values) if values else None)


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
    attack = quick_attack(name)
    assert isinstance(attack, Attack) and attack.name == name
    result = attack.run(target, AttackSettings(max_epochs=2, patience=1, batch_size=32,
                                               noise_draws=2))
    assert isinstance(result, attack.result_type) and isinstance(result, AttackResult)
    assert result.attack == name
    if attack.trains:
        assert 1 <= result.curve.epochs_run <= result.curve.ceiling
        assert result.curve.best_epoch in [record["epoch"] for record in result.curve.records]
    else:
        assert result.curve.epochs_run == 0
    cells = result.cells()
    assert cells and cells.get("epochs", 0) == result.curve.epochs_run
    assert all(value is None or isinstance(value, bool) or math.isfinite(value)
               for value in cells.values() if not isinstance(value, str))
    saved = json.loads(json.dumps(result.to_dict()))
    assert attack.result_type.from_dict(saved).to_dict() == result.to_dict()


def test_attack_names_are_unique_and_match_their_keys():
    assert all(attack.name == name for name, attack in ATTACKS.items())


@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_has_default_options_that_key_its_cache(name):
    """An attack built without options gets its defaults; they are plain JSON values (part of
    a cached result's key), and options of another type are refused."""
    attack_type = ATTACKS[name]
    attack = attack_type()
    assert issubclass(attack_type.result_type, AttackResult)
    if attack_type.options_type is None:
        assert attack.options is None and attack.options_key() is None
        return
    assert attack.options == attack_type.options_type()
    assert json.loads(json.dumps(attack.options_key())) == attack.options_key()
    with pytest.raises(TypeError, match=name):
        attack_type(options=object())
