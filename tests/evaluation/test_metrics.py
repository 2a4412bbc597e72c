"""Tests of noisyarl.evaluation.metrics: properties, and image metrics against a NumPy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats.contingency import association

from noisyarl.evaluation.metrics import (
    MS_SSIM_MIN_SIZE,
    contingency_table,
    cramers_v,
    ms_ssim,
    privacy_utility_delta,
    psnr,
    ssim,
)

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
