"""Tests of noisyarl.evaluation.metrics: properties, and image metrics against a NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import binom
from scipy.stats.contingency import association

from noisyarl.evaluation.metrics import (
    MS_SSIM_MIN_SIZE,
    PSNR_CAP_DB,
    ImageScores,
    advantage,
    beats_chance,
    beats_mean_image,
    contingency_table,
    cramers_v,
    image_scores,
    mean_image_baseline,
    ms_ssim,
    normalised_delta,
    per_image_psnr,
    privacy_utility_delta,
    psnr,
    ssim,
)
from noisyarl.evaluation.statistics import Interval

# --- privacy-utility delta -------------------------------------------------------------------

percentages = st.floats(0, 100, allow_nan=False)


def test_delta_matches_the_papers_maxent_row():
    assert privacy_utility_delta(53.82, 23.40) == pytest.approx(30.42)


@settings(deadline=None)
@given(percentages, percentages)
def test_delta_is_antisymmetric(utility, privacy):
    assert privacy_utility_delta(utility, privacy) == -privacy_utility_delta(privacy, utility)
    assert privacy_utility_delta(utility, utility) == 0.0


# --- Cramér's V ------------------------------------------------------------------------------


@st.composite
def label_pairs(draw):
    n = draw(st.integers(1, 80))
    a = draw(st.lists(st.integers(0, 4), min_size=n, max_size=n))
    b = draw(st.lists(st.integers(-2, 3), min_size=n, max_size=n))
    return np.array(a), np.array(b)


@settings(deadline=None)
@given(label_pairs())
def test_cramers_v_is_bounded_symmetric_and_matches_scipy(labels):
    a, b = labels
    value = cramers_v(a, b)

    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(cramers_v(b, a), abs=1e-12)
    table = contingency_table(a, b)
    expected = 0.0 if min(table.shape) < 2 else association(table, method="cramer")
    assert value == pytest.approx(expected, abs=1e-9)


@settings(deadline=None, max_examples=50)
@given(st.integers(2, 5), st.integers(2, 5), st.data())
def test_cramers_v_of_a_random_table_matches_scipy(rows, columns, data):
    counts = data.draw(st.lists(st.integers(1, 30), min_size=rows * columns,
                                max_size=rows * columns))
    table = np.array(counts).reshape(rows, columns)
    a = np.repeat(np.repeat(np.arange(rows), columns), table.reshape(-1))
    b = np.repeat(np.tile(np.arange(columns), rows), table.reshape(-1))

    assert cramers_v(a, b) == pytest.approx(association(table, method="cramer"), abs=1e-9)


def test_cramers_v_accepts_tensors_and_ignores_label_names():
    a = torch.tensor([0, 0, 1, 1, 2, 2, 0])
    b = torch.tensor([5, 5, 7, 7, 7, 9, 9])
    renamed = np.array([10, 10, -1, -1, 3, 3, 10])
    assert cramers_v(a, b) == pytest.approx(cramers_v(renamed, b.numpy()))
    assert cramers_v(a, b) == pytest.approx(association(contingency_table(a, b)))


def test_cramers_v_of_a_constant_column_is_zero():
    assert cramers_v([1, 1, 1, 1], [0, 1, 0, 1]) == 0.0
    assert cramers_v(np.array([0, 1, 2]), np.array([4, 4, 4])) == 0.0


# --- PSNR / SSIM / MS-SSIM -------------------------------------------------------------------


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    offsets = np.arange(size) - (size - 1) / 2
    profile = np.exp(-(offsets**2) / (2 * sigma**2))
    profile /= profile.sum()
    return np.outer(profile, profile)


def _filter(image: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Local weighted means of a 2-D image reflect-padded so that the output keeps its size."""
    pad = window.shape[0] // 2
    padded = np.pad(image, pad, mode="reflect")  # mirror without repeating the edge pixel
    patches = np.lib.stride_tricks.sliding_window_view(padded, window.shape)
    return np.einsum("hwij,ij->hw", patches, window)


def reference_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang et al. (2004) SSIM, data range 1, averaged over pixels, channels and the batch.

    torchmetrics' border convention: reflect padding by half the window, the whole map averaged.
    """
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    window = _gaussian_window()
    maps = []
    channels_x, channels_y = x.reshape(-1, *x.shape[2:]), y.reshape(-1, *y.shape[2:])
    for image_x, image_y in zip(channels_x, channels_y, strict=True):
        mu_x, mu_y = _filter(image_x, window), _filter(image_y, window)
        var_x = _filter(image_x**2, window) - mu_x**2
        var_y = _filter(image_y**2, window) - mu_y**2
        cov = _filter(image_x * image_y, window) - mu_x * mu_y
        numerator = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
        denominator = (mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2)
        maps.append(numerator / denominator)
    return float(np.mean(maps))


def reference_psnr(x: np.ndarray, y: np.ndarray) -> float:
    per_image_mse = ((x - y) ** 2).reshape(x.shape[0], -1).mean(axis=1)
    return float(np.mean(10 * np.log10(1.0 / per_image_mse)))


def _image_pair(seed: int, shape=(2, 3, 24, 20), noise: float = 0.1):
    generator = torch.Generator().manual_seed(seed)
    rows = torch.linspace(0, 1, shape[2])[:, None]
    columns = torch.linspace(0, 1, shape[3])[None, :]
    smooth = (0.2 + 0.3 * rows + 0.3 * columns).expand(shape).clone()
    x = (smooth + 0.1 * torch.rand(shape, generator=generator)).clamp(0, 1)
    y = (x + noise * torch.randn(shape, generator=generator)).clamp(0, 1)
    return x, y


@pytest.mark.parametrize(("seed", "noise"), [(0, 0.02), (1, 0.1), (2, 0.3)])
def test_psnr_and_ssim_match_a_numpy_reference(seed, noise):
    x, y = _image_pair(seed, noise=noise)
    x64, y64 = x.double().numpy(), y.double().numpy()

    assert psnr(x, y) == pytest.approx(reference_psnr(x64, y64), abs=1e-4)
    assert ssim(x, y) == pytest.approx(reference_ssim(x64, y64), abs=1e-4)


def test_psnr_of_identical_images_is_infinite():
    x, _ = _image_pair(3)
    assert math.isinf(psnr(x, x)) and psnr(x, x) > 0
    assert ssim(x, x) == pytest.approx(1.0)


@settings(max_examples=25, deadline=None)
@given(st.floats(1e-3, 0.2), st.floats(1.05, 10.0))
def test_psnr_decreases_as_noise_grows(scale, factor):
    generator = torch.Generator().manual_seed(0)
    x = 0.25 + 0.5 * torch.rand(1, 3, 8, 8, generator=generator)  # no clipping below ±0.25
    direction = torch.randn(1, 3, 8, 8, generator=generator).clamp(-1, 1) * 0.25
    small, large = scale, min(scale * factor, 1.0)
    assert psnr(x, x + small * direction) > psnr(x, x + large * direction)


def test_image_metrics_reject_0_to_255_images():
    x, y = _image_pair(4)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        psnr(x * 255, y * 255)
    with pytest.raises(ValueError):
        ssim(x, y - 0.5)
    with pytest.raises(ValueError):
        psnr(x, y[:1])


def test_image_metrics_accept_tiny_overshoot_and_half_precision():
    x, y = _image_pair(5)
    overshoot = x.clone()
    overshoot[0, 0, 0, 0] = 1.0005
    assert psnr(overshoot, y) == pytest.approx(psnr(x.clamp(max=1.0), y), abs=0.5)
    assert ssim(x.bfloat16(), y.bfloat16()) == pytest.approx(ssim(x, y), abs=0.02)


def test_ms_ssim_needs_the_documented_minimum_size():
    small = torch.rand(1, 3, MS_SSIM_MIN_SIZE - 1, MS_SSIM_MIN_SIZE)
    assert ms_ssim(small, small) is None

    x, y = _image_pair(6, shape=(1, 3, MS_SSIM_MIN_SIZE, MS_SSIM_MIN_SIZE), noise=0.2)
    assert ms_ssim(x, x) == pytest.approx(1.0, abs=1e-5)
    assert 0.0 < ms_ssim(x, y) < 1.0


# --- chance baselines: advantage, binomial test, normalised delta ----------------------------


@st.composite
def split_outcomes(draw):
    """(n, chance %, score %) with the score an achievable accuracy k / n, mostly within a few
    binomial standard deviations of chance, where the test's decision changes."""
    n = draw(st.integers(1, 3000))
    chance = draw(st.floats(0, 100, allow_nan=False))
    p = chance / 100
    spread = draw(st.floats(-3, 6))
    near = round(n * p + spread * math.sqrt(n * p * (1 - p)) + draw(st.integers(-2, 2)))
    correct = draw(st.one_of(st.just(min(max(near, 0), n)), st.integers(0, n)))
    return n, chance, 100.0 * correct / n


@settings(deadline=None, max_examples=300)
@given(split_outcomes(), st.sampled_from([0.01, 0.05, 0.1]))
def test_beats_chance_agrees_with_scipys_binomial_test(outcome, alpha):
    n, chance, score = outcome
    correct = round(score * n / 100)
    p_value = float(binom.sf(correct - 1, n, chance / 100))  # P(X >= correct)
    assume(abs(p_value - alpha) > 1e-9 * alpha)  # leave float ties at the threshold alone
    above_quantile = correct > binom.ppf(1 - alpha, n, chance / 100)
    assert beats_chance(score, chance, n, alpha=alpha) == (p_value <= alpha)
    if chance < 100:
        assert beats_chance(score, chance, n, alpha=alpha) == above_quantile


@settings(deadline=None)
@given(split_outcomes(), st.integers(0, 3000))
def test_beats_chance_is_monotone_in_the_score(outcome, more_correct):
    n, chance, score = outcome
    better = 100.0 * min(round(score * n / 100) + more_correct, n) / n
    if beats_chance(score, chance, n):
        assert beats_chance(better, chance, n)


@settings(deadline=None)
@given(st.integers(0, 5000), percentages)
def test_a_constant_predictor_has_no_advantage_and_never_beats_chance(n, majority_rate):
    assert advantage(majority_rate, majority_rate) == 0.0
    assert not beats_chance(majority_rate, majority_rate, n)
    assert not beats_chance(majority_rate, majority_rate, n, alpha=0.2)


def test_beats_chance_edge_cases():
    assert beats_chance(53.0, 50.0, 10_000)  # p ~ 1e-9
    assert not beats_chance(53.0, 50.0, 100)  # p ~ 0.3
    assert not beats_chance(100.0, 100.0, 1000)  # nothing to beat
    assert not beats_chance(90.0, 50.0, 0)  # no test samples
    assert beats_chance(1.0, 0.0, 100)  # one hit when hits are impossible under H0
    assert not beats_chance(40.0, 50.0, 10_000)
    with pytest.raises(ValueError):
        beats_chance(50.0, 120.0, 10)
    with pytest.raises(ValueError):
        beats_chance(50.0, 40.0, 10, alpha=0.0)


def test_beats_chance_survives_a_large_test_split():
    # 20k samples, a tail probability far below float precision near 0: no underflow to NaN.
    assert beats_chance(70.0, 50.0, 20_000)
    assert not beats_chance(50.4, 50.0, 20_000)  # p ~ 0.13


def test_advantage_is_in_points():
    assert advantage(61.5, 50.0) == pytest.approx(11.5)
    assert advantage(40.0, 50.0) == pytest.approx(-10.0)


def test_normalised_delta_on_fixed_numbers():
    assert normalised_delta(100.0, 50.0, 50.0, 50.0) == pytest.approx(100.0)
    assert normalised_delta(75.0, 50.0, 60.0, 20.0) == pytest.approx(0.0)  # 1/2 - 1/2
    assert normalised_delta(50.0, 50.0, 100.0, 80.0) == pytest.approx(-100.0)
    # 0.9 of the utility gain, 0.1 of the attacker's: 80 points (paper-like CelebA numbers)
    assert normalised_delta(95.0, 50.0, 62.0, 58.0) == pytest.approx(100 * (0.9 - 4 / 42))
    assert normalised_delta(90.0, 100.0, 60.0, 50.0) is None
    assert normalised_delta(90.0, 50.0, 100.0, 100.0) is None


@st.composite
def at_or_above(draw, chance_max=99.9):
    chance = draw(st.floats(0, chance_max, allow_nan=False))
    return chance, draw(st.floats(chance, 100, allow_nan=False))


@settings(deadline=None)
@given(at_or_above(), at_or_above())
def test_normalised_delta_is_bounded_for_scores_above_chance(utility_pair, privacy_pair):
    (u0, u), (p0, p) = utility_pair, privacy_pair
    value = normalised_delta(u, u0, p, p0)
    assert -100.0 - 1e-9 <= value <= 100.0 + 1e-9
    # Swapping the roles flips the sign; equal relative gains cancel.
    assert normalised_delta(p, p0, u, u0) == pytest.approx(-value, abs=1e-9)
    assert normalised_delta(u, u0, u, u0) == 0.0


@settings(deadline=None)
@given(at_or_above(), st.floats(0, 99.9))
def test_normalised_delta_is_the_utility_share_when_the_attacker_is_at_chance(pair, p0):
    u0, u = pair
    assert normalised_delta(u, u0, p0, p0) == pytest.approx(100 * (u - u0) / (100 - u0))


# --- reconstruction scores and the mean-image baseline ---------------------------------------


def _direct_scores(outputs: torch.Tensor, targets: torch.Tensor) -> ImageScores:
    return ImageScores(psnr(outputs, targets), ssim(outputs, targets),
                       float(((outputs.double() - targets.double()) ** 2).mean()))


def test_image_scores_do_not_depend_on_the_batch_size():
    x, y = _image_pair(3, shape=(7, 3, 12, 12))
    whole = _direct_scores(x, y)
    for batch_size in (1, 3, 7, 100):
        scores = image_scores(x, y, batch_size=batch_size)
        assert scores.psnr == pytest.approx(whole.psnr, rel=1e-5)
        assert scores.ssim == pytest.approx(whole.ssim, rel=1e-5)
        assert scores.mse == pytest.approx(whole.mse, rel=1e-6)
    with pytest.raises(ValueError):
        image_scores(x, y[:3])


@settings(deadline=None, max_examples=20)
@given(st.integers(1, 9), st.integers(1, 5), st.integers(1, 4), st.integers(0, 2**16))
def test_mean_image_baseline_equals_a_direct_computation(n_train, n_test, batch_size, seed):
    generator = torch.Generator().manual_seed(seed)
    train = torch.randint(0, 256, (n_train, 3, 8, 8), generator=generator, dtype=torch.uint8)
    test = torch.randint(0, 256, (n_test, 3, 8, 8), generator=generator, dtype=torch.uint8)
    mean = (train.double() / 255).mean(dim=0, keepdim=True).float()
    expected = _direct_scores(mean.expand(n_test, 3, 8, 8), test.float() / 255)

    baseline = mean_image_baseline(train, test, batch_size=batch_size)

    assert baseline.psnr == pytest.approx(expected.psnr, rel=1e-5)
    assert baseline.ssim == pytest.approx(expected.ssim, rel=1e-4, abs=1e-6)
    assert baseline.mse == pytest.approx(expected.mse, rel=1e-5)
    # Float images in [0, 1] give the same scores as the uint8 ones they came from.
    as_float = mean_image_baseline(train.float() / 255, test.float() / 255, batch_size=batch_size)
    assert as_float.mse == pytest.approx(baseline.mse, rel=1e-5)


def test_a_perfect_reconstruction_beats_the_mean_image():
    generator = torch.Generator().manual_seed(0)
    train = torch.rand(6, 3, 12, 12, generator=generator)
    test = torch.rand(4, 3, 12, 12, generator=generator)
    baseline = mean_image_baseline(train, test)
    perfect = image_scores(test, test)
    assert perfect.psnr > baseline.psnr and perfect.ssim > baseline.ssim
    assert perfect.mse == 0.0 < baseline.mse


def test_mean_image_baseline_rejects_0_to_255_floats_and_mismatched_shapes():
    train = torch.full((2, 3, 8, 8), 200.0)
    with pytest.raises(ValueError, match="uint8"):
        mean_image_baseline(train, torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError):
        mean_image_baseline(torch.rand(2, 3, 8, 8), torch.rand(2, 3, 9, 9))


# --- per-image PSNR and the mean-image rule ----------------------------------------------------


def test_per_image_psnr_averages_to_psnr_and_caps_an_exact_copy():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 3, 8, 8, generator=generator), torch.rand(6, 3, 8, 8, generator=generator)
    per_image = per_image_psnr(x, y)
    assert per_image.shape == (6,) and per_image.dtype == torch.float64
    assert float(per_image.mean()) == pytest.approx(psnr(x, y), abs=1e-4)
    assert per_image_psnr(x, x).tolist() == [PSNR_CAP_DB] * 6


@pytest.mark.parametrize(("low", "high", "learned"), [
    (0.2, 1.4, True),      # the whole interval above the mean image
    (-0.05, 0.07, False),  # +0.01 dB on average is not a recovery
    (-2.0, -0.5, False),
    (math.nan, math.nan, False),  # one test image: no interval, no claim
])
def test_a_reconstruction_beats_the_mean_image_only_beyond_its_interval(low, high, learned):
    gain = Interval((low + high) / 2 if not math.isnan(low) else 0.3, low, high, 32,
                    "t over test images")
    assert beats_mean_image(gain) is learned
