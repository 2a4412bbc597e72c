import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from noisyarl.config import (
    ConfigError,
    apply_overrides,
    config_from_dict,
    load_config,
    parse_override,
    save_config,
)

BASE = {"name": "t", "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}}}


def _with(section: str, values: dict) -> dict:
    data = {**BASE, section: values}
    return data


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (_with("method", {"sigma": -1.0}), "method.sigma: must be >= 0"),
        (_with("method", {"split": 5}), "method.split: must be in 1..4"),
        (_with("method", {"split": 0}), "method.split: must be in 1..4"),
        (_with("method", {"sigmaa": 1.0}), "method.sigmaa: unknown key"),
        ({**BASE, "trian": {}}, "trian: unknown key"),
        (_with("train", {"epochs": "many"}), "train.epochs: expected an integer"),
        (_with("train", {"epochs": 0}), "train.epochs: must be >= 1"),
        (_with("train", {"precision": "fp8"}), "train.precision: 'fp8' is not one of"),
        (_with("train", {"channels_last": "yes"}),
         "train.channels_last: invalid value 'yes' (expected true or false"),
        (_with("data", {"image_size": 8}), "data.image_size: must be >= 16"),
        (_with("data", {"max_train": 0}), "data.max_train: must be >= 1 or null"),
        (_with("attacks", {"leakage": {"lr": -1.0}}), "attacks.leakage.lr: must be > 0"),
        (_with("attacks", {"leakage": {"epocs": 1}}), "attacks.leakage.epocs: unknown key"),
        ({"name": "t"}, "tasks.utility.label: is required"),
        (_with("tasks", {"utility": {"label": "Smiling", "kind": "binary-ish"}, "private":
                         {"label": "Male"}}), "tasks.utility.kind"),
        (_with("train", {"device": "tpu"}), "train.device"),
        (_with("compare", {"label": "x"}), "compare: expected a list"),
        (_with("compare", [{"label": "a", "method": {"sigma": -2}}]),
         "compare[0].method.sigma: must be >= 0"),
        (_with("compare", [{}, {"method": {"split": 7}}]), "compare[1].method.split: must be in"),
        (_with("compare", [{"lable": "a"}]), "compare[0].lable: unknown key"),
        (_with("sweep", {"sigmas": [1.0, -0.5]}), "sweep.sigmas: every σ must be >= 0"),
        (_with("sweep", {"sigmas": ["big"]}), "sweep.sigmas[0]: expected a number"),
        (_with("method", {"sigma": float("inf")}), "method.sigma: must be a finite number"),
        (_with("attacks", {"leakage": {"lr": float("nan")}}),
         "attacks.leakage.lr: must be a finite number"),
        (_with("method", {"params": {"lambda_adv": float("-inf")}}),
         "method.params.lambda_adv: must be a finite number"),
        (_with("method", {"name": "maxnet"}), "method.name: unknown method 'maxnet'"),
        (_with("compare", [{"method": {"name": "upper_bound", "params": {"lambda_adv": 1}}}]),
         "compare[0].method.params.lambda_adv: unknown key for upper_bound"),
        (_with("compare", [{"method": {"name": "disco", "params": {"alpha": "half"}}}]),
         "compare[0].method.params.alpha: expected a number, got 'half'"),
        (_with("attacks", {"leakage": {"batch_size": 0}}),
         "attacks.leakage.batch_size: must be >= 1"),
        (_with("data", {"dataset": "mnist"}), "data.dataset: unknown dataset 'mnist'"),
        (_with("sweep", {"sigmas": [1.0, 1.0]}), "sweep.sigmas: must not repeat a σ"),
    ],
)
def test_config_errors_name_the_key(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        config_from_dict(values)


def test_yaml_round_trip_and_overrides(tmp_path):
    config = config_from_dict(_with("method", {"sigma": 2.5, "params": {"lambda_adv": 0.1}}))
    path = tmp_path / "c.yaml"
    save_config(config, path)
    loaded = load_config(path, ["train.epochs=3", "method.params.lambda_adv=0.5"])
    assert loaded.method.sigma == 2.5
    assert loaded.train.epochs == 3
    assert loaded.method.params == {"lambda_adv": 0.5}


def test_override_of_unknown_section_is_an_error():
    config = config_from_dict(BASE)
    with pytest.raises(ConfigError, match="train.foo: unknown key"):
        apply_overrides(config, ["train.foo=1"])
    with pytest.raises(ConfigError, match="nothing: unknown key in override"):
        apply_overrides(config, ["nothing.deeper=1"])
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(config, ["train.epochs"])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(listing)


def test_run_name_is_readable():
    config = config_from_dict(_with("method", {"sigma": 0.5, "split": 4}))
    assert config.run_name() == "t-noisy_arl-K4-s0.5-seed0"
    # A defence without a split or a noise module does not pretend to have them.
    assert config_from_dict(_with("method", {"name": "upper_bound"})).run_name() == (
        "t-upper_bound-seed0")


def test_compare_entries_become_typed_methods_and_replace_the_config_method():
    config = config_from_dict(_with("compare", [
        {"label": "ARL", "method": {"name": "noisy_arl", "sigma": 0}},
        {"method": {"name": "upper_bound"}},
    ]))
    assert [entry.label for entry in config.compare] == ["ARL", ""]
    assert config.compare[0].method.sigma == 0.0 and config.compare[1].method.split == 3
    row = config.with_method(config.compare[1].method)
    assert row.method.name == "upper_bound" and config.method.name == "noisy_arl"
    assert row.data == config.data and row.seed == config.seed


keys = st.lists(st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True), min_size=1, max_size=4)
scalars = st.one_of(st.integers(-10**6, 10**6), st.booleans(),
                    st.floats(allow_nan=False, allow_infinity=False, width=32),
                    st.from_regex(r"[a-z][a-z0-9]{0,10}", fullmatch=True))


@given(keys, scalars)
def test_parse_override_round_trips_yaml_scalars(path, value):
    import yaml

    text = ".".join(path) + "=" + yaml.safe_dump(value, default_flow_style=True).strip()
    text = text.removesuffix("\n...").removesuffix("...").strip()
    parsed_path, parsed_value = parse_override(text)
    assert parsed_path == path
    assert parsed_value == value


@given(st.text(alphabet=st.characters(blacklist_characters="="), max_size=20))
def test_parse_override_without_equals_is_rejected(text):
    with pytest.raises(ConfigError):
        parse_override(text)


def test_clearing_params_lets_a_config_switch_method():
    config = config_from_dict(_with("method", {"params": {"lambda_adv": 0.1}}))
    with pytest.raises(ConfigError, match=re.escape("clear them with --set method.params={}")):
        apply_overrides(config, ["method.name=upper_bound"])
    switched = apply_overrides(config, ["method.name=upper_bound", "method.params={}"])
    assert switched.method.name == "upper_bound" and switched.method.params == {}


def test_the_old_worst_case_spelling_is_read_with_a_warning(tmp_path):
    """``attacks.suite: worst-case`` (files, and overrides, written before the rename) still
    selects the suite, and the warning names the new spelling."""
    path = tmp_path / "old.yaml"
    path.write_text("tasks: {utility: {label: Smiling}, private: {label: Male}}\n"
                    "attacks: {suite: worst-case}\n")
    with pytest.warns(FutureWarning, match="attacks.suite: 'worst-case' is deprecated; write "
                                           "'worst_case'"):
        config = load_config(path)
    assert config.attacks.suite == "worst_case"
    with pytest.warns(FutureWarning, match="worst_case"):
        overridden = apply_overrides(config, ["attacks.suite=worst-case"])
    assert overridden.attacks.suite == "worst_case"


def test_an_unknown_suite_is_still_an_error():
    with pytest.raises(ConfigError, match="attacks.suite"):
        config_from_dict({"tasks": {"utility": {"label": "a"}, "private": {"label": "b"}},
                          "attacks": {"suite": "strongest"}})
