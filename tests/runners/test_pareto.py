"""Fair baselines: every defence's trade-off knob is declared, validated and tuned alike."""

from __future__ import annotations

import csv

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyarl.config import ConfigError, MethodConfig, config_from_dict
from noisyarl.methods import METHODS, find_knob, method_params
from noisyarl.runners.compare import run_comparison
from noisyarl.runners.pareto import pareto_front

OBFUSCATING = [name for name, method in METHODS.items() if method.obfuscates]


@pytest.mark.parametrize("name", OBFUSCATING)
def test_every_obfuscating_defence_declares_a_knob_whose_grid_is_valid(name):
    knobs = METHODS[name].knobs
    assert knobs, f"{name} declares no trade-off knob"
    for knob in knobs:
        assert len(knob.grid) >= 2 and len(set(knob.grid)) == len(knob.grid)
        for value in knob.grid:
            method = MethodConfig(name=name).with_knob(knob.key, value)
            method_params(name, method.params)  # raises on a value the defence refuses
            assert (method.sigma if knob.key == "sigma" else method.params[knob.name]) == value


def test_a_defence_that_sends_raw_images_has_no_knob():
    with pytest.raises(ValueError, match="upper_bound has no trade-off knob"):
        find_knob("upper_bound")


def _values(root, compare, pareto=None):
    return {
        "name": "par",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40,
                 "max_train": 96, "max_valid": 32, "max_test": 32},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"enabled": False}},
        "compare": compare,
        "pareto": pareto or {},
    }


@pytest.mark.parametrize(("compare", "pareto", "message"), [
    ([{"method": {"name": "maxent_arl"}, "knob": "params.beta"}], None,
     r"compare\[0\].knob: maxent_arl has no knob 'params.beta' \(its knobs: params.alpha\)"),
    ([], {"grids": {"disco": {"sigma": [1.0]}}},
     "pareto.grids.disco.sigma: disco has no knob 'sigma'"),
    ([], {"grids": {"maxent_arl": {"params.alpha": [0.5, 1.0]}}},
     r"pareto.grids.maxent_arl.params.alpha: 1.0: method.params: alpha must be .* in \[0, 1\)"),
    ([], {"grids": {"noisy_arl": {"sigma": [-1.0]}}}, "pareto.grids.noisy_arl.sigma: -1.0"),
    ([], {"grids": {"no_such": {"sigma": [1.0]}}}, "pareto.grids.no_such: unknown method"),
])
def test_an_unknown_knob_or_a_bad_grid_value_is_an_error_naming_it(tmp_path, compare, pareto,
                                                                   message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(_values(tmp_path, compare, pareto))


def test_pareto_mode_trains_the_grid_and_reports_the_validation_choice(tiny_celeba_root,
                                                                       tmp_path):
    config = config_from_dict(_values(
        tiny_celeba_root, [{"label": "noisy ARL", "method": {"name": "noisy_arl", "split": 2}}],
        {"grids": {"noisy_arl": {"sigma": [0.5, 3.0]}}}))
    rows = run_comparison(config, tmp_path, pareto=True)
    assert sorted(path.name for path in (tmp_path / "runs").iterdir()) == [
        "par-sigma0.5-noisy_arl-K2-s0.5-seed0", "par-sigma3-noisy_arl-K2-s3-seed0"]
    with open(tmp_path / "pareto.csv", newline="") as handle:
        grid = list(csv.DictReader(handle))
    assert [float(row["knob_value"]) for row in grid] == [0.5, 3.0]
    chosen = [row for row in grid if row["selected"] == "yes"]
    assert len(chosen) == 1 and rows[0]["method"] == chosen[0]["method"]
    # the choice is the larger validation Δ (both rows learned or neither: tiny data)
    assert float(chosen[0]["valid_delta"]) == max(float(row["valid_delta"]) for row in grid)
    assert rows[0]["method"] in ("noisy ARL (σ=0.5)", "noisy ARL (σ=3)")
    assert (tmp_path / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Pareto mode" in (tmp_path / "report.md").read_text()


point = st.tuples(st.floats(0, 100), st.floats(0, 100))


@settings(max_examples=80, deadline=None)
@given(st.lists(point, min_size=1, max_size=15))
def test_the_front_holds_exactly_the_undominated_points(points):
    front = set(pareto_front(points))

    def dominates(a, b):
        return a[0] <= b[0] and a[1] >= b[1] and a != b

    assert front  # a finite set always has an undominated point
    for index, candidate in enumerate(points):
        dominated = any(dominates(other, candidate) for other in points)
        assert (index in front) == (not dominated)


def test_point_label_replaces_the_knob_setting_of_the_row_label():
    from noisyarl.methods import Knob
    from noisyarl.runners.pareto import KnobPoint

    sigma, alpha = Knob("sigma", (1.0,)), Knob("params.alpha", (0.1,), "α")
    config = None  # the label does not read the config
    assert KnobPoint("noisy ARL RN18_3 (σ=9)", config, sigma, 4.0).label == \
        "noisy ARL RN18_3 (σ=4)"
    assert KnobPoint("ARL RN18_3 (σ=0)", config, alpha, 0.25).label == \
        "ARL RN18_3 (σ=0) (α=0.25)"
    assert Knob("params.alpha", (0.1,)).symbol == "alpha"  # no label: the param's name
    assert KnobPoint("RN18 (upper bound)", config).label == "RN18 (upper bound)"
    assert KnobPoint("noisy ARL RN18_3 (σ=9)", config, sigma, 4.0).curve_label == \
        "noisy ARL RN18_3"
