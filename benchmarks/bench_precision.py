"""Does mixed precision change the science? The quick demo's rows in fp32 and in bf16.

Runs the rows of the quick demo (``noisyarl.runners.demo.QUICK``: generated CelebA-format faces,
private Male / utility Smiling, RN18_3): the RN18 upper bound, ARL (σ = 0) and noisy ARL at
each σ of the demo's sweep, every row with both attacks, once per variant with the same seeds,
and prints utility, privacy, Δ, validation Δ and PSNR side by side. The default variants are fp32
and bf16 + channels_last with seed 0, plus fp32 with seed 1: the fp32 seed-0/seed-1 gap is the
run-to-run noise that the fp32/bf16 gap is to be judged against.

Usage: python benchmarks/bench_precision.py [--out bench-precision] [--variants ...]
A variant is ``PRECISION[+cl]@SEED``, e.g. ``fp32@0``, ``bf16+cl@0``.
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import torch

from noisyarl.data.registry import load_splits
from noisyarl.runners.demo import QUICK, demo_config
from noisyarl.runners.experiment import run_experiment
from noisyarl.runners.result import RunResult, best_ranked
from noisyarl.runners.sweep import sweep_row
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba

#: Row keys (:func:`noisyarl.runners.sweep.sweep_row`) printed side by side per variant.
COLUMNS = ("utility", "privacy", "privacy_paper", "delta", "valid_delta", "psnr")


def parse_variant(text: str) -> tuple[str, bool, int]:
    """``bf16+cl@0`` -> ("bf16", True, 0)."""
    name, _, seed = text.partition("@")
    precision, _, layout = name.partition("+")
    return precision, layout == "cl", int(seed or 0)


def run_variant(variant: str, rows: list[tuple[str, str, float]], data_root: Path, splits,
                out: Path) -> dict[str, tuple[RunResult, float]]:
    """(result, seconds) of every demo row trained in ``variant``; keys: row label."""
    precision, channels_last, seed = parse_variant(variant)
    results = {}
    for label, method, sigma in rows:
        config = demo_config(QUICK, data_root, method, sigma)
        config.seed = seed
        config.train = dataclasses.replace(config.train, precision=precision,
                                           channels_last=channels_last, progress=False)
        started = time.perf_counter()
        result = RunResult.from_metrics(run_experiment(
            config, out / variant / config.run_name(), resume=True, splits=splits))
        results[label] = (result, time.perf_counter() - started)
        row = sweep_row(result)
        print(f"  {variant:>10} {label:<16} " + " ".join(
            f"{key} {row[key]:.2f}" for key in COLUMNS if row[key] is not None)
            + f" {results[label][1]:.0f} s {result.status}", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench-precision"))
    parser.add_argument("--variants", nargs="+", default=["fp32@0", "bf16+cl@0", "fp32@1"])
    args = parser.parse_args()
    data_root = args.out / "data"
    ensure_celeba(data_root, SynthConfig(num_images=QUICK.num_images, image_size=QUICK.image_size,
                                         seed=0))
    splits = load_splits("celeba", data_root, QUICK.image_size)
    rows = [("RN18 upper bound", "upper_bound", 0.0), ("ARL σ=0", "noisy_arl", 0.0),
            *[(f"noisy σ={sigma:g}", "noisy_arl", sigma) for sigma in QUICK.sigmas]]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; quick demo plan {QUICK}")
    results = {variant: run_variant(variant, rows, data_root, splits, args.out)
               for variant in args.variants}

    header = "| row | " + " | ".join(f"{column} {variant}" for column in COLUMNS
                                    for variant in args.variants) + " |"
    print("\n" + header + "\n|" + "---|" * (1 + len(COLUMNS) * len(args.variants)))
    for label, _, _ in rows:
        cells = []
        for column in COLUMNS:
            for variant in args.variants:
                value = sweep_row(results[variant][label][0])[column]
                cells.append("–" if value is None else f"{value:.2f}")
        print(f"| {label} | " + " | ".join(cells) + " |")
    for variant in args.variants:
        print(f"{variant}: {choice(results[variant])}")


def choice(results: dict[str, tuple[RunResult, float]]) -> str:
    """Which noisy row the validation Δ picks (rows that did not learn are skipped), and the
    variant's total time."""
    noisy = {label: result for label, (result, _) in results.items()
             if label.startswith("noisy")}
    best, ranked = best_ranked(list(noisy.values()), lambda result: result.validation_delta)
    chosen = next(label for label, result in noisy.items() if result is best)
    seconds = sum(seconds for _, seconds in results.values())
    learned = "" if ranked else " (no σ learned)"
    return f"validation picks {chosen}{learned}; {seconds:.0f} s for all rows"


if __name__ == "__main__":
    main()
