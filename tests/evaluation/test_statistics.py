"""Intervals and paired tests: checked against scipy on fixed numbers, by coverage on a known
distribution, and by properties that any aggregation over seeds must have."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from noisyarl.evaluation.statistics import (
    Interval,
    bootstrap_interval,
    holm_adjusted,
    paired_bootstrap,
    paired_t,
    t_interval,
    t_interval_of_sums,
)
from noisyarl.utils.io import to_json_value

SEED_VALUES = [71.2, 68.9, 74.5, 70.1, 66.3]
finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


def test_t_interval_matches_scipy_on_fixed_numbers():
    interval = t_interval(SEED_VALUES)
    low, high = stats.t.interval(0.95, len(SEED_VALUES) - 1, loc=np.mean(SEED_VALUES),
                                 scale=stats.sem(SEED_VALUES))
    assert interval.mean == pytest.approx(np.mean(SEED_VALUES))
    assert (interval.low, interval.high) == pytest.approx((low, high))
    assert interval.n == 5 and interval.kind == "t over seeds"


def test_t_interval_at_another_confidence_matches_scipy():
    interval = t_interval(SEED_VALUES, confidence=0.9)
    low, high = stats.t.interval(0.9, 4, loc=np.mean(SEED_VALUES), scale=stats.sem(SEED_VALUES))
    assert (interval.low, interval.high) == pytest.approx((low, high))


def test_one_seed_gives_its_value_and_no_interval():
    interval = t_interval([63.0])
    assert interval.mean == 63.0 and math.isnan(interval.low) and interval.kind == "one value"
    assert interval.text() == "63.00"
    assert not interval.excludes_zero()


def test_paired_t_matches_scipy_ttest_rel():
    a, b = [80.1, 78.4, 83.0, 79.9, 81.2], [75.0, 76.2, 77.1, 74.0, 78.8]
    comparison = paired_t(a, b)
    reference = stats.ttest_rel(a, b)
    assert comparison.p_value == pytest.approx(reference.pvalue)
    assert comparison.difference.mean == pytest.approx(np.mean(np.subtract(a, b)))
    assert comparison.significant


def test_pairing_removes_the_shared_seed_effect():
    """Two rows that move together over seeds differ clearly when paired, not when unpaired."""
    seed_effect = np.array([60.0, 70.0, 80.0, 65.0, 75.0])
    a, b = seed_effect + 2.0 + np.array([0.1, -0.1, 0.2, 0.0, -0.2]), seed_effect
    assert paired_t(a, b).significant
    unpaired = t_interval(a).low < t_interval(b).high  # the two intervals overlap
    assert unpaired


def test_equal_rows_are_not_significant_and_say_so():
    comparison = paired_t([70.0, 71.0, 72.0], [70.0, 71.0, 72.0])
    assert not comparison.significant and comparison.p_value == 1.0
    assert "do not differ beyond the interval" in comparison.words("noisy ARL", "ARL")


def test_words_name_the_higher_row():
    comparison = paired_t([60.0, 61.0, 59.5, 60.5], [70.0, 71.5, 69.0, 70.2])
    sentence = comparison.words("noisy ARL", "ARL σ=0")
    assert sentence.startswith("Δ: ARL σ=0 is higher than noisy ARL by") and "beyond" in sentence


def test_bootstrap_interval_covers_a_known_mean_about_95_percent_of_the_time():
    """Coverage of the percentile bootstrap for the mean of Bernoulli(0.7) outcomes, n = 300
    (a test set of 300 images): close to the nominal 95 %."""
    rng = np.random.default_rng(0)
    trials, covered = 200, 0
    for trial in range(trials):
        outcomes = (rng.random(300) < 0.7).astype(float)
        covered += bootstrap_interval(outcomes, resamples=500, seed=trial).contains(0.7)
    assert 0.90 <= covered / trials <= 0.99


def test_bootstrap_is_seeded_and_labelled():
    outcomes = np.random.default_rng(1).random(50)
    first, second = bootstrap_interval(outcomes, seed=3), bootstrap_interval(outcomes, seed=3)
    assert first == second and first.kind == "bootstrap over test images" and first.n == 50
    assert "[" in first.text()


def test_bootstrap_of_two_columns_needs_a_statistic():
    pairs = np.ones((10, 2))
    with pytest.raises(ValueError, match="statistic"):
        bootstrap_interval(pairs)
    delta = bootstrap_interval(pairs * [90.0, 60.0],
                               statistic=lambda r: r[..., 0].mean(1) - r[..., 1].mean(1))
    assert delta.mean == pytest.approx(30.0) and delta.low == pytest.approx(30.0)


def test_paired_bootstrap_detects_a_shift_and_not_its_absence():
    rng = np.random.default_rng(2)
    b = (rng.random(1000) < 0.6) * 100.0
    shifted = np.where(rng.random(1000) < 0.15, 100.0, b)  # some wrong answers become right
    assert paired_bootstrap(shifted, b).significant
    assert not paired_bootstrap(b, b).significant


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [[1.0]]])
def test_bad_values_are_refused(bad):
    with pytest.raises(ValueError):
        t_interval(bad)


def test_unequal_pairs_are_refused():
    with pytest.raises(ValueError, match="equal lengths"):
        paired_t([1.0, 2.0], [1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=12))
def test_the_interval_holds_its_mean(values):
    interval = t_interval(values)
    assert interval.low <= interval.mean + 1e-9 and interval.mean - 1e-9 <= interval.high
    assert min(values) - 1e-9 <= interval.mean <= max(values) + 1e-9


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=50))
def test_the_interval_from_running_sums_is_the_t_interval_of_the_values(values):
    # What shards of a test split add up under torchrun gives the interval of all its images.
    from_sums = t_interval_of_sums(len(values), sum(values), sum(v * v for v in values))
    direct = t_interval(values)
    assert from_sums.mean == pytest.approx(direct.mean, abs=1e-9)
    assert from_sums.half_width == pytest.approx(direct.half_width, rel=1e-5, abs=1e-5)
    assert from_sums.kind == "t over test images" and from_sums.n == len(values)


def test_one_value_from_sums_gives_no_interval_and_no_values_are_refused():
    assert math.isnan(t_interval_of_sums(1, 2.5, 6.25).low)
    with pytest.raises(ValueError):
        t_interval_of_sums(0, 0.0, 0.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(finite, min_size=2, max_size=12), finite)
def test_shifting_every_seed_shifts_the_interval(values, shift):
    moved, interval = t_interval([v + shift for v in values]), t_interval(values)
    assert moved.mean == pytest.approx(interval.mean + shift, abs=1e-6)
    assert moved.half_width == pytest.approx(interval.half_width, abs=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=12))
def test_swapping_the_rows_negates_the_paired_difference(pairs):
    a, b = [x for x, _ in pairs], [y for _, y in pairs]
    forward, backward = paired_t(a, b), paired_t(b, a)
    assert forward.difference.mean == pytest.approx(-backward.difference.mean, abs=1e-6)
    assert forward.significant == backward.significant


@settings(max_examples=40, deadline=None)
@given(st.lists(finite, min_size=1, max_size=8))
def test_an_interval_round_trips_through_json(values):
    interval = t_interval(values)
    again = Interval.from_dict(json.loads(json.dumps(to_json_value(interval.to_dict()))))
    assert again.mean == interval.mean and again.kind == interval.kind
    assert again.text() == interval.text()


def test_holm_adjustment_on_fixed_numbers():
    # sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 -> running max 0.06
    assert holm_adjusted([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # the 24-contrast case of the precision study: p = 0.044 alone is far from 5 % after Holm
    assert holm_adjusted([0.044] + [0.5] * 23)[0] == pytest.approx(1.0)
    assert holm_adjusted([0.3]) == [0.3]
    adjusted = holm_adjusted([0.02, math.nan, 0.04])
    assert math.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.04)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm_adjusted([0.5, 1.5])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=30))
def test_holm_never_lowers_a_p_value_and_keeps_their_order(p_values):
    adjusted = holm_adjusted(p_values)
    pairs = list(zip(p_values, adjusted, strict=True))
    assert all(raw <= adj + 1e-12 and adj <= 1.0 for raw, adj in pairs)
    for raw_a, adj_a in pairs:
        for raw_b, adj_b in pairs:
            if raw_a < raw_b:
                assert adj_a <= adj_b + 1e-12
    # the smallest p is multiplied by the family size (Bonferroni's step), capped at 1
    assert min(adjusted) == pytest.approx(min(1.0, len(p_values) * min(p_values)))
