"""Every registered defence meets one contract (in the manner of timm's ``tests/test_models.py``).

A defence is one module plus one line in ``METHODS``; these checks are what the shared training
loop, the attacks, the reports and ``noisyarl export`` rely on, so a new defence that passes them
plugs in with no other edit (see ``test_toy_defence.py``). The checks themselves live in
``conftest.py`` (:class:`DefenceContract`).
"""

from __future__ import annotations

import pytest

from noisyarl.builders import untrained_defence
from noisyarl.methods import METHODS

NAMES = sorted(METHODS)


@pytest.mark.parametrize("name", NAMES)
def test_class_flags_and_registration(name, defence_contract):
    defence_contract.check_class(name)


@pytest.mark.parametrize("name", NAMES)
def test_one_train_step(name, defence_contract):
    defence_contract.check_train_step(name)


@pytest.mark.parametrize("name", NAMES)
def test_predict_utility_shape(name, defence_contract):
    defence_contract.check_predict_utility(name)


@pytest.mark.parametrize("name", NAMES)
def test_attacker_on_z(name, defence_contract):
    defence_contract.check_attacker(name)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip(name, defence_contract):
    defence_contract.check_state_dict_round_trip(name)


@pytest.mark.parametrize("name", NAMES)
def test_describe_follows_the_class_flags(name, defence_contract):
    defence_contract.check_describe(name)


@pytest.mark.parametrize("name", NAMES)
def test_noise_hook_matches_has_noise(name, defence_contract):
    defence_contract.check_noise_hook(name)


@pytest.mark.parametrize("name", NAMES)
def test_client_exports_to_onnx(name, defence_contract, tmp_path):
    defence_contract.check_export(name, tmp_path)


def test_display_names_are_distinct_and_match_the_paper_config_labels():
    names = {cls.display_name for cls in METHODS.values()}
    assert len(names) == len(METHODS)
    assert {name: cls.display_name for name, cls in METHODS.items()} == {
        "noisy_arl": "noisy ARL", "upper_bound": "RN18 (upper bound)",
        "maxent_arl": "MaxEnt-ARL", "deep_obfuscator": "DeepObfuscator", "disco": "DISCO",
        "noise_only": "noise only", "nopeek": "NoPeek", "blur": "Gaussian blur",
        "pixelate": "Pixelation", "pixel_noise": "Pixel noise", "shredder": "Shredder"}


@pytest.mark.parametrize("name", NAMES)
def test_untrained_defence_builds_every_defence(name):
    defence = untrained_defence(name, image_size=32, split=2, sigma=0.5)
    assert type(defence) is METHODS[name]
    assert defence.describe()["sigma"] == (0.5 if METHODS[name].has_noise else 0.0)


@pytest.mark.parametrize("name", NAMES)
def test_proxy_adversaries_are_the_children_outside_the_main_optimiser(name):
    """``train.compile`` leaves these eager: they are backpropagated twice per step."""
    defence = untrained_defence(name, 16)
    main = {id(p) for group in defence.configure_optimizers()["main"].param_groups
            for p in group["params"]}
    proxies = defence.proxy_adversaries()
    for child in defence.children():
        own = [id(p) for p in child.parameters()]
        assert (child in proxies) == (bool(own) and not set(own) & main)
    if name in ("noisy_arl", "maxent_arl", "disco", "deep_obfuscator"):
        assert defence.adversary in proxies
    if name == "deep_obfuscator":
        assert defence.reconstructor in proxies
