"""Distance correlation (Székely, Rizzo & Bakirov 2007, *Ann. Statist.* 35(6)): a dependence
measure between two samples of any dimensions, 0 exactly when they are independent (in the
population) and 1 when one is an orthogonal transform and scaling of the other.

Written with torch operations so it serves both as NoPeek's differentiable training loss
(Vepakomma et al. 2020) and as a model-free leakage figure between images x and the
transmitted z. :func:`distance_correlation` is the biased (V-statistic) sample estimator, the
one NoPeek uses: on independent samples it is positive, and in high dimension close to 1
(Székely & Rizzo 2013, *J. Multivariate Anal.* 117), so as a leakage figure it is read beside
:func:`bias_corrected_distance_correlation`, which is ≈ 0 under independence.
"""

from __future__ import annotations

import torch


def _centred_distances(samples: torch.Tensor) -> torch.Tensor:
    """Double-centred Euclidean distance matrix [N, N] of ``samples`` [N, ...] (flattened).

    Computed in at least float32: float64 input stays float64, bf16/fp16 (autocast) and
    integer input become float32.
    """
    flat = samples.reshape(samples.shape[0], -1)
    if flat.dtype != torch.float64:
        flat = flat.float()
    distances = torch.cdist(flat, flat)
    return (distances - distances.mean(dim=0, keepdim=True)
            - distances.mean(dim=1, keepdim=True) + distances.mean())


def _check_pair(x: torch.Tensor, y: torch.Tensor) -> None:
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y need the same number of samples, got {x.shape[0]} and "
                         f"{y.shape[0]}")
    if x.shape[0] < 2:
        raise ValueError("distance correlation needs at least 2 samples")


def distance_covariance_squared(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """dCov²ₙ(x, y): mean of the product of the double-centred distance matrices (scalar).

    x [N, ...], y [N, ...]: paired samples along the first axis, any trailing shapes.
    """
    _check_pair(x, y)
    return (_centred_distances(x) * _centred_distances(y)).mean()


def distance_correlation(x: torch.Tensor, y: torch.Tensor, *,
                         squared: bool = False) -> torch.Tensor:
    """Sample distance correlation dCorₙ(x, y) in [0, 1] (scalar tensor, differentiable).

    x [N, ...], y [N, ...]: paired samples (e.g. images [N, 3, S, S] and z [N, C, H, W]).
    squared: return dCor² (dCov² / √(dVar²(x)·dVar²(y))) instead; NoPeek's public code
    minimises dCor itself (:mod:`noisyarl.methods.nopeek`). A constant sample (zero distance
    variance) gives 0. The square root is taken of at least 1e-12 so that its gradient stays
    finite at independence. No value is read back to the host (no device sync per call).
    """
    _check_pair(x, y)
    a, b = _centred_distances(x), _centred_distances(y)
    covariance = (a * b).mean()
    variance = ((a * a).mean() * (b * b).mean()).sqrt()
    constant = variance <= 0.0
    ratio = covariance / torch.where(constant, torch.ones_like(variance), variance)
    squared_value = torch.where(constant, torch.zeros_like(ratio), ratio).clamp(min=0.0, max=1.0)
    if squared:
        return squared_value
    root = squared_value.clamp(min=1e-12).sqrt()
    return torch.where(squared_value > 0, root, torch.zeros_like(root))


def _u_centred_distances(samples: torch.Tensor) -> torch.Tensor:
    """U-centred Euclidean distance matrix [N, N] (zero diagonal) of ``samples`` [N, ...]."""
    flat = samples.reshape(samples.shape[0], -1).double()
    n = flat.shape[0]
    distances = torch.cdist(flat, flat)
    row = distances.sum(dim=1, keepdim=True) / (n - 2)
    column = distances.sum(dim=0, keepdim=True) / (n - 2)
    total = distances.sum() / ((n - 1) * (n - 2))
    centred = distances - row - column + total
    return centred.fill_diagonal_(0.0)


def bias_corrected_distance_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Bias-corrected squared distance correlation R*ₙ(x, y) (Székely & Rizzo 2014, *Ann.
    Statist.* 42(6), U-centred distance matrices), a float64 scalar.

    Unlike :func:`distance_correlation`, whose V-statistic tends to 1 for *independent*
    samples as the dimension grows (n = 256 independent 768-d Gaussian pairs give 0.96), this
    estimator is unbiased for the population dCov² and ≈ 0 under independence at any
    dimension; it can be slightly negative. 1 for y an orthogonal transform and scaling of x.
    Needs N ≥ 4. Not for training (float64, no special care for gradients).
    """
    _check_pair(x, y)
    if x.shape[0] < 4:
        raise ValueError("the bias-corrected distance correlation needs at least 4 samples")
    a, b = _u_centred_distances(x), _u_centred_distances(y)
    covariance = (a * b).sum()
    variance = ((a * a).sum() * (b * b).sum()).sqrt()
    if float(variance) <= 0.0:
        return covariance.new_zeros(())
    return covariance / variance


__all__ = ["bias_corrected_distance_correlation", "distance_correlation",
           "distance_covariance_squared"]
