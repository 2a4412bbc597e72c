"""Does mixed precision change the science? A paired 2 x 2 study over seeds.

Arms: fp32 and bf16 autocast, each with NCHW and channels_last memory layout. Rows: ARL (σ = 0)
and noisy ARL at ``--sigma`` (4 by default), both on the quick demo's plan
(``noisyarl.runners.demo.QUICK``: generated CelebA-format faces, private Male / utility Smiling,
RN18_3, every attacker trained to its validation plateau). Every (arm, row) is trained once per
seed (``--seeds``, 8 by default) on the same data; an arm and the reference arm (fp32 NCHW) share
seeds, so their difference is paired seed by seed.

Prints and writes ``OUT/precision.md`` and ``OUT/precision.json``: each arm's utility, privacy and
Δ as mean ± 95 % t-interval over seeds, and for each arm against fp32 (and bf16 + channels_last
against fp32 + channels_last: the precision effect at the fast layout) the paired difference with
its 95 % interval, paired t-test p-value and Holm-adjusted p-value over all the contrasts
reported (one nominally significant contrast among two dozen is what chance gives), in words.
``--resume``-safe: finished runs are reused.

Usage: python benchmarks/bench_precision.py --out DIR [--seeds 0 1 2 3 4 5 6 7] [--sigma 4]
       [--arms fp32 fp32+cl bf16 bf16+cl]
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from noisyarl.data.registry import load_splits
from noisyarl.evaluation.report import format_table
from noisyarl.evaluation.statistics import holm_adjusted, paired_t, t_interval
from noisyarl.runners.demo import QUICK, demo_config
from noisyarl.runners.experiment import run_experiment
from noisyarl.runners.result import RunResult
from noisyarl.runtime.device import describe_device, resolve_device
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba
from noisyarl.utils.io import atomic_write_text, write_json

#: Figures compared between arms (row keys of :meth:`RunResult.row`).
FIGURES = ("utility", "privacy", "delta")
#: (arm, reference arm) pairs whose paired differences are reported.
CONTRASTS = (("bf16", "fp32"), ("fp32+cl", "fp32"), ("bf16+cl", "fp32"), ("bf16+cl", "fp32+cl"))


def parse_arm(text: str) -> tuple[str, bool]:
    """``bf16+cl`` -> ("bf16", True)."""
    precision, _, layout = text.partition("+")
    return precision, layout == "cl"


def run_arm(arm: str, sigma: float, seed: int, data_root: Path, splits, out: Path) -> RunResult:
    """One run of the quick demo's ``noisy_arl`` at ``sigma`` in ``arm`` with ``seed``."""
    precision, channels_last = parse_arm(arm)
    config = demo_config(QUICK, data_root, "noisy_arl", sigma).with_seed(seed)
    config.train = dataclasses.replace(config.train, precision=precision,
                                       channels_last=channels_last, progress=False)
    started = time.perf_counter()
    result = RunResult.from_metrics(run_experiment(
        config, out / arm / config.run_name(), resume=True, splits=splits))
    print(f"  {arm:>8} σ={sigma:g} seed {seed}: utility {result.utility:.2f} privacy "
          f"{result.privacy:.2f} Δ {result.delta:.2f} ({time.perf_counter() - started:.0f} s) "
          f"{result.status}", flush=True)
    return result


def arm_rows(results: dict, arms: list[str], sigmas: list[float]) -> list[dict]:
    """Mean ± interval of every figure, per arm and σ."""
    rows = []
    for sigma in sigmas:
        for arm in arms:
            runs = results[arm][sigma]
            row = {"arm": arm, "sigma": sigma, "seeds": len(runs),
                   "not_learned": sum(not run.ranked for run in runs)}
            for figure in FIGURES:
                row[figure] = t_interval([getattr(run, figure) for run in runs])
            rows.append(row)
    return rows


def contrast_rows(results: dict, arms: list[str], sigmas: list[float]) -> list[dict]:
    """Paired differences arm − reference over the shared seeds, per σ and figure."""
    rows = []
    for sigma in sigmas:
        for arm, reference in CONTRASTS:
            if arm not in arms or reference not in arms:
                continue
            for figure in FIGURES:
                a = [getattr(run, figure) for run in results[arm][sigma]]
                b = [getattr(run, figure) for run in results[reference][sigma]]
                comparison = paired_t(a, b)
                rows.append({"sigma": sigma, "contrast": f"{arm} − {reference}",
                             "figure": figure, "difference": comparison.difference,
                             "p_value": comparison.p_value,
                             "significant": comparison.significant,
                             "words": comparison.words(arm, reference, what=figure)})
    # Many contrasts are read at once: a verdict must also survive Holm's adjustment over all.
    for row, p_holm in zip(rows, holm_adjusted([row["p_value"] for row in rows]), strict=True):
        row["p_holm"] = p_holm
        row["verdict"] = verdict(row["significant"], p_holm, len(rows))
    return rows


def verdict(significant: bool, p_holm: float, family: int) -> str:
    """A contrast's verdict: beyond its own interval, and whether that survives Holm's
    adjustment over the ``family`` contrasts of the study."""
    if not significant:
        return "not established"
    if p_holm < 0.05:
        return f"beyond the interval, also after Holm over {family} contrasts"
    return f"beyond its own interval only; not after Holm over {family} contrasts"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-precision"))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(8)))
    parser.add_argument("--sigma", type=float, default=4.0)
    parser.add_argument("--arms", nargs="+", default=["fp32", "fp32+cl", "bf16", "bf16+cl"])
    args = parser.parse_args()
    data_root = args.out / "data"
    ensure_celeba(data_root, SynthConfig(num_images=QUICK.num_images, image_size=QUICK.image_size,
                                         seed=0))
    splits = load_splits("celeba", data_root, QUICK.image_size)
    sigmas = [0.0, args.sigma]
    machine = f"{describe_device(resolve_device('auto'))}, torch {torch.__version__}"
    print(f"# {machine}; quick demo plan {QUICK}")
    started = time.perf_counter()
    # Seed-major order: an interrupted study has every arm at the same seeds so far.
    results = {arm: {sigma: [] for sigma in sigmas} for arm in args.arms}
    for seed in args.seeds:
        for sigma in sigmas:
            for arm in args.arms:
                results[arm][sigma].append(run_arm(arm, sigma, seed, data_root, splits,
                                                   args.out))
    arms = arm_rows(results, args.arms, sigmas)
    contrasts = contrast_rows(results, args.arms, sigmas)
    text = "\n\n".join([
        f"# Mixed precision, paired over {len(args.seeds)} seeds ({machine}; "
        f"{datetime.now(timezone.utc):%Y-%m-%d}; {time.perf_counter() - started:.0f} s)",
        format_table(arms, [("arm", "arm", "{}"), ("sigma", "σ", "{:g}"),
                            ("seeds", "seeds", "{}"), ("not_learned", "runs not learned", "{}"),
                            ("utility", "utility ± 95 % CI", "{:.2f}"),
                            ("privacy", "privacy ± 95 % CI", "{:.2f}"),
                            ("delta", "Δ ± 95 % CI", "{:.2f}")]),
        format_table(contrasts, [("sigma", "σ", "{:g}"), ("contrast", "contrast", "{}"),
                                 ("figure", "figure", "{}"),
                                 ("difference", "paired difference ± 95 % CI", "{:+.2f}"),
                                 ("p_value", "p (paired t)", "{:.3g}"),
                                 ("p_holm", "p (Holm)", "{:.3g}"),
                                 ("verdict", "verdict", "{}")]),
        "\n".join(f"- σ={row['sigma']:g}: {row['words']} Holm-adjusted p = {row['p_holm']:.3g}."
                  for row in contrasts),
    ]) + "\n"
    atomic_write_text(args.out / "precision.md", text)
    write_json(args.out / "precision.json", {
        "machine": machine, "seeds": args.seeds, "sigmas": sigmas,
        "arms": [{**row, **{f: row[f].to_dict() for f in FIGURES}} for row in arms],
        "contrasts": [{**row, "difference": row["difference"].to_dict()} for row in contrasts]})
    print("\n" + text)


if __name__ == "__main__":
    main()
