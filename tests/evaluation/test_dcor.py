"""Distance correlation: the NoPeek loss and the model-free leakage figure."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from noisyarl.evaluation.dcor import distance_correlation, distance_covariance_squared


def _reference_dcor(x: np.ndarray, y: np.ndarray) -> float:
    """Székely's definition written out with loops (float64), independent of the module."""
    n = len(x)
    a = np.array([[np.linalg.norm(x[i] - x[j]) for j in range(n)] for i in range(n)])
    b = np.array([[np.linalg.norm(y[i] - y[j]) for j in range(n)] for i in range(n)])

    def centre(d: np.ndarray) -> np.ndarray:
        centred = np.empty_like(d)
        for i in range(n):
            for j in range(n):
                centred[i, j] = d[i, j] - d[i].mean() - d[:, j].mean() + d.mean()
        return centred

    a, b = centre(a), centre(b)
    dcov, dvar_x, dvar_y = (a * b).sum() / n**2, (a * a).sum() / n**2, (b * b).sum() / n**2
    return math.sqrt(dcov / math.sqrt(dvar_x * dvar_y))


def test_matches_the_definition_on_small_matrices():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 3))
    y = x[:, :2] ** 2 + 0.3 * rng.normal(size=(7, 2))
    got = distance_correlation(torch.tensor(x), torch.tensor(y))
    assert float(got) == pytest.approx(_reference_dcor(x, y), rel=1e-5)


def test_is_one_for_z_equal_to_x_and_its_similarity_transforms():
    x = torch.randn(64, 3, 4, 4)
    assert float(distance_correlation(x, x)) == pytest.approx(1.0, abs=1e-5)
    rotation, _ = torch.linalg.qr(torch.randn(48, 48))
    z = 2.5 * (x.reshape(64, -1) @ rotation) + 7.0
    assert float(distance_correlation(x, z)) == pytest.approx(1.0, abs=1e-4)


def test_is_near_zero_for_independent_samples_and_shrinks_with_n():
    generator = torch.Generator().manual_seed(0)
    small = distance_correlation(torch.randn(50, 1, generator=generator),
                                 torch.randn(50, 1, generator=generator))
    large = distance_correlation(torch.randn(2000, 1, generator=generator),
                                 torch.randn(2000, 1, generator=generator))
    assert float(large) < 0.1 and float(large) < float(small)


def test_detects_dependence_that_pearson_misses():
    x = torch.linspace(-1, 1, 400).unsqueeze(1)
    y = x**2  # Pearson correlation 0
    assert float(torch.corrcoef(torch.cat([x, y], 1).T)[0, 1]).__abs__() < 1e-5
    assert float(distance_correlation(x, y)) > 0.4


def test_gradient_is_finite_even_at_independence_and_constant_gives_zero():
    x = torch.randn(32, 5, requires_grad=True)
    loss = distance_correlation(x, torch.randn(32, 2))
    loss.backward()
    assert torch.isfinite(x.grad).all()
    assert float(distance_correlation(torch.ones(8, 2), torch.randn(8, 2))) == 0.0


def test_refuses_unpaired_or_single_samples():
    with pytest.raises(ValueError, match="same number"):
        distance_correlation(torch.randn(4, 2), torch.randn(5, 2))
    with pytest.raises(ValueError, match="at least 2"):
        distance_covariance_squared(torch.randn(1, 2), torch.randn(1, 2))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(3, 12), st.integers(1, 4)),
              elements=st.floats(-100, 100)),
       st.floats(0.1, 10.0), st.integers(0, 2**16))
def test_lies_in_unit_interval_symmetric_and_scale_free(x, scale, seed):
    # Shift invariance is a property of real numbers: a sample whose spread is below the
    # rounding step of the shifted values (e.g. 2e-16 beside +3) becomes constant in floats.
    assume(np.ptp(x, axis=0).max() > 1e-6)
    y = np.random.default_rng(seed).normal(size=(len(x), 2))
    tx, ty = torch.tensor(x), torch.tensor(y)
    value = float(distance_correlation(tx, ty))
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(float(distance_correlation(ty, tx)), abs=1e-6)
    assert value == pytest.approx(float(distance_correlation(scale * tx + 3.0, ty)), abs=1e-5)


def test_bias_corrected_version_is_near_zero_for_independent_high_dimensional_samples():
    from noisyarl.evaluation.dcor import bias_corrected_distance_correlation

    generator = torch.Generator().manual_seed(1)
    x, y = (torch.randn(256, 768, generator=generator) for _ in range(2))
    # The V-statistic is close to 1 here although x and y are independent ...
    assert float(distance_correlation(x, y)) > 0.9
    # ... the bias-corrected one is not, and still sees dependence and identity.
    assert abs(float(bias_corrected_distance_correlation(x, y))) < 0.02
    noisy = x + 0.5 * torch.randn(256, 768, generator=generator)
    assert float(bias_corrected_distance_correlation(x, noisy)) > 0.5
    assert float(bias_corrected_distance_correlation(x, 3 * x + 1)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="at least 4"):
        bias_corrected_distance_correlation(x[:3], y[:3])
