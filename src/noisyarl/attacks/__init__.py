"""Attacks on a frozen client: attribute leakage and reconstruction."""

from noisyarl.attacks.leakage import LeakageResult, run_leakage_attack
from noisyarl.attacks.reconstruction import ReconstructionResult, run_reconstruction_attack

__all__ = [
    "LeakageResult",
    "ReconstructionResult",
    "run_leakage_attack",
    "run_reconstruction_attack",
]
