"""Sign conventions of noisy ARL's adversarial update; its ``normalize`` param."""

import copy

import pytest
import torch
import yaml

from noisyarl.builders import defence_from_config
from noisyarl.config import config_from_dict
from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.errors import ConfigError
from noisyarl.methods import DefenceSpec, build_defence, method_params
from noisyarl.models.noise import noise_switched_off
from noisyarl.runtime import StepContext

SMILING = Task("Smiling", LabelInfo(kind="binary"))
MALE = Task("Male", LabelInfo(kind="binary"))


def _defence(lambda_adv: float, sigma: float = 0.0):
    torch.manual_seed(0)
    spec = DefenceSpec(utility=SMILING, private=MALE, split=2, sigma=sigma, noise=True,
                       params=method_params("noisy_arl", {"lambda_adv": lambda_adv, "lr": 1e-3}),
                       image_size=32)
    return build_defence("noisy_arl", spec)


def _batch():
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(16, 3, 32, 32, generator=generator)
    return images, torch.randint(0, 2, (16,), generator=generator), torch.randint(
        0, 2, (16,), generator=generator)


def _adversary_loss(defence, images, private):
    defence.eval()
    with torch.no_grad():
        return float(MALE.loss(defence.adversary(defence.client(images)), private))


def test_obfuscator_step_raises_the_adversary_loss():
    # train_step with lambda * L_adv dominating the utility term: against the adversary as it was
    # before the step, the updated obfuscator must give a higher adversary loss.
    defence = _defence(lambda_adv=1000.0)
    images, utility, private = _batch()
    adversary_before = copy.deepcopy(defence.adversary.state_dict())
    before = _adversary_loss(defence, images, private)
    defence.train_step(images, utility, private, defence.configure_optimizers(),
                       StepContext(torch.device("cpu")))
    defence.adversary.load_state_dict(adversary_before)
    assert _adversary_loss(defence, images, private) > before


def test_adversary_step_lowers_its_own_loss_and_only_moves_the_adversary():
    defence = _defence(lambda_adv=0.01)
    images, utility, private = _batch()
    optimizers = defence.configure_optimizers()
    client_before = [p.detach().clone() for p in defence.client.parameters()]
    adversary_before = [p.detach().clone() for p in defence.adversary.parameters()]
    before = _adversary_loss(defence, images, private)
    for _ in range(5):
        defence.train()
        with torch.no_grad():
            z = defence.client(images)
        loss = MALE.loss(defence.adversary(z), private)
        StepContext(torch.device("cpu")).step(loss, optimizers["adversary"])
    assert _adversary_loss(defence, images, private) < before
    client_after = list(defence.client.parameters())
    adversary_after = list(defence.adversary.parameters())
    assert all(torch.equal(a, b) for a, b in zip(client_before, client_after, strict=True))
    assert any(not torch.equal(a, b)
               for a, b in zip(adversary_before, adversary_after, strict=True))


def test_train_step_updates_all_three_models_with_their_own_objectives():
    defence = _defence(lambda_adv=0.01, sigma=0.5)
    images, utility, private = _batch()
    optimizers = defence.configure_optimizers()
    snapshots = {name: [p.detach().clone() for p in getattr(defence, name).parameters()]
                 for name in ("client", "utility_head", "adversary")}
    values = defence.train_step(images, utility, private, optimizers,
                                StepContext(torch.device("cpu")))
    assert set(values) == {"utility_loss", "adversary_loss", "utility_correct",
                           "adversary_correct"}
    assert all(not v.requires_grad for v in values.values())
    for name, before in snapshots.items():
        after = list(getattr(defence, name).parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), name


def _defence_from_yaml_params(params: dict):
    config = config_from_dict({
        "name": "normalised",
        "data": {"image_size": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5, "params": params},
    })
    return defence_from_config(config, SMILING, MALE)


def test_config_params_normalize_makes_the_noise_module_normalise():
    torch.manual_seed(0)
    defence = _defence_from_yaml_params(yaml.safe_load("normalize: true")).eval()
    noise = defence.noise_module()
    assert noise.normalize and noise.active and defence.describe()["params"]["normalize"]
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad(), noise_switched_off(noise):
        h = defence.client(images)
    rms = h.flatten(1).pow(2).mean(dim=1).sqrt()
    torch.testing.assert_close(rms, torch.ones(4), atol=1e-5, rtol=0)


def test_normalize_is_off_by_default_and_must_be_a_boolean():
    assert not _defence_from_yaml_params({}).noise_module().normalize
    with pytest.raises(ConfigError, match="method.params.normalize"):
        _defence_from_yaml_params({"normalize": "yes"})
