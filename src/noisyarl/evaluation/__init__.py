"""Metrics, client cost, reports and plots."""

from noisyarl.evaluation.cost import ClientCost, measure_client_cost
from noisyarl.evaluation.metrics import (
    cramers_v,
    ms_ssim,
    privacy_utility_delta,
    psnr,
    ssim,
)

__all__ = [
    "ClientCost",
    "cramers_v",
    "measure_client_cost",
    "ms_ssim",
    "privacy_utility_delta",
    "psnr",
    "ssim",
]
