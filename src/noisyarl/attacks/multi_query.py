"""Multi-query averaging: an attacker who sees k obfuscations of the same image averages them.

Noisy ARL draws its noise afresh per query, so the mean of k queries is ``h + σ·ε̄`` with
``std(ε̄) = 1/√k``. :class:`AveragedClient` is that attacker's view of the client; the leakage
attacker is trained and scored on k-averaged z, and the reconstruction decoder is trained and
scored on it too (:func:`run_multi_query`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from noisyarl.attacks.common import freeze
from noisyarl.attacks.leakage import run_leakage_attack
from noisyarl.attacks.reconstruction import run_reconstruction_attack
from noisyarl.data.base import ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.models.noise import GaussianNoise, noise_switched_off
from noisyarl.runtime import StepContext


class AveragedClient(nn.Module):
    """z̄ = mean of ``queries`` calls of ``client`` on the same images.

    ``noise``: the client's noise module (:meth:`noisyarl.methods.Defence.noise_module`), which
    adds ``σ·ε`` to the client's output. Given, and the client in eval mode (attacks freeze it),
    the noise-free features are deterministic, so the k queries differ only by their noise: h
    is computed once (the client with its noise module switched off) and the k noise draws are
    averaged, which is the same random variable at 1/k of the cost. Without it (a client
    without a noise module, keyed noise) the client is called k times.
    """

    def __init__(self, client: nn.Module, queries: int,
                 noise: GaussianNoise | None = None) -> None:
        super().__init__()
        if queries < 1:
            raise ValueError(f"queries must be >= 1, got {queries}")
        self.client = client
        self.queries = int(queries)
        self.noise = noise

    def _features_once(self) -> bool:
        return self.noise is not None and not self.client.training

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._features_once():
            with noise_switched_off(self.noise):
                h = self.client(x)
            total = torch.zeros_like(h)
            for _ in range(self.queries):
                total += self.noise(h) - h
            return h + total / self.queries
        total = self.client(x)
        for _ in range(self.queries - 1):
            total = total + self.client(x)
        return total / self.queries


@torch.no_grad()
def queries_differ(client: nn.Module, split: ImageSplit, context: StepContext,
                   count: int = 8) -> bool:
    """Whether two queries of the same ``count`` images give different z (fresh noise)."""
    client = freeze(client)
    images = split.images[:count].float().div(255.0).to(context.device)
    return not torch.equal(client(images), client(images))


def run_multi_query(
    client: nn.Module,
    make_attacker,
    splits: dict[str, ImageSplit],
    task: Task,
    context: StepContext,
    *,
    queries: list[int],
    image_size: int,
    leakage_settings: dict[str, Any],
    reconstruction_settings: dict[str, Any] | None,
    eval_batch_size: int = 256,
    seed: int = 0,
    progress: bool = False,
    first_row: dict[str, Any] | None = None,
    noise: GaussianNoise | None = None,
) -> list[dict[str, Any]]:
    """One row per k of ``queries``: the leakage attacker (``make_attacker()``, a fresh module)
    and the reconstruction decoder, both trained and scored on k-averaged z
    (:class:`AveragedClient`; ``noise``: the client's noise module, if it has one).

    leakage_settings / reconstruction_settings: ``epochs``, ``lr``, ``batch_size`` of each attack
    (None: no reconstruction). When two queries of an image give the same z (a deterministic
    client, keyed noise), averaging changes nothing: the k > 1 rows repeat the k = 1 row and say
    so (``identical_queries``). ``first_row``: an already measured k = 1 row to reuse.

    Row keys: queries, privacy (best test epoch, paper protocol), privacy_at_best_valid,
    psnr, ssim, identical_queries.
    """
    identical = not queries_differ(client, splits["test"], context)
    rows: list[dict[str, Any]] = []
    base: dict[str, Any] | None = None
    for k in queries:
        if k == 1 and first_row is not None:
            row = dict(first_row)
        elif identical and base is not None:
            row = dict(base)
        else:
            row = _measure(AveragedClient(client, k, noise), make_attacker, splits, task, context,
                           image_size, leakage_settings, reconstruction_settings,
                           eval_batch_size, seed, progress)
        row.update(queries=k, identical_queries=identical)
        base = base or row
        rows.append(row)
    return rows


def _measure(client, make_attacker, splits, task, context, image_size, leakage_settings,
             reconstruction_settings, eval_batch_size, seed, progress) -> dict[str, Any]:
    torch.manual_seed(seed)
    leakage = run_leakage_attack(client, make_attacker(), splits, task, context,
                                 eval_batch_size=eval_batch_size, seed=seed, progress=progress,
                                 **leakage_settings)
    row = {"privacy": leakage.test_best, "privacy_at_best_valid": leakage.test_at_best_valid,
           "psnr": None, "ssim": None}
    if reconstruction_settings is not None:
        reconstruction = run_reconstruction_attack(
            client, splits, context, image_size=image_size, eval_batch_size=eval_batch_size,
            seed=seed, progress=progress, **reconstruction_settings)
        row.update(psnr=reconstruction.psnr, ssim=reconstruction.ssim)
    return row


__all__ = ["AveragedClient", "queries_differ", "run_multi_query"]
