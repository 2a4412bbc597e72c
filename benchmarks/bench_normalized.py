"""Noisy ARL with and without the normalised noise module on generated faces.

For each σ, trains noisy ARL twice (``method.params.normalize`` false / true) on the same
generated CelebA-format faces and reports utility and privacy beside their chance levels, and
the signal-to-noise figures: RMS(h), the between-image SD of h and σ_eff = σ / SD(h), at the
first and the last training epoch. Without normalisation σ is measured against an h that the
obfuscator may grow; with it, h has unit RMS per sample and σ means the same in every run.

Usage: python benchmarks/bench_normalized.py --out /tmp/bench-normalized [--num-images 2000]
       [--image-size 40] [--epochs 3] [--sigmas 1 4] [--seed 0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from noisyarl.config import config_from_dict
from noisyarl.data.registry import load_splits
from noisyarl.evaluation.report import format_table
from noisyarl.runners.experiment import run_experiment
from noisyarl.runners.result import RunResult
from noisyarl.runtime.device import describe_device, resolve_device
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba
from noisyarl.utils.io import atomic_write_text

COLUMNS = [
    ("normalize", "normalised h", "{}"), ("sigma", "σ", "{:g}"),
    ("utility", "utility ↑", "{:.2f}"), ("utility_chance", "utility chance", "{:.2f}"),
    ("privacy", "privacy ↓ (valid-selected)", "{:.2f}"),
    ("privacy_chance", "privacy chance", "{:.2f}"), ("delta", "Δ ↑ (pp)", "{:.2f}"),
    ("h_sd_first", "SD(h) epoch 1", "{:.3g}"), ("h_sd_last", "SD(h) last epoch", "{:.3g}"),
    ("h_sd_test", "SD(h) test", "{:.3g}"), ("h_rms_test", "RMS(h) test", "{:.3g}"),
    ("sigma_eff", "σ_eff (test)", "{:.3g}"),
    ("status", "status", "{}"),
]


def config_for(data_root: Path, args: argparse.Namespace, sigma: float, normalize: bool):
    return config_from_dict({
        "name": "normalized", "seed": args.seed,
        "data": {"dataset": "celeba", "root": str(data_root), "image_size": args.image_size},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 3, "sigma": sigma,
                   "params": {"normalize": normalize}},
        "train": {"epochs": args.epochs, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 12, "patience": 3},
                    "reconstruction": {"enabled": False}},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=2000)
    parser.add_argument("--image-size", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sigmas", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    data_root = args.out / "data"
    ensure_celeba(data_root, SynthConfig(num_images=args.num_images, image_size=args.image_size,
                                         seed=0), progress=False)
    splits = load_splits("celeba", data_root, args.image_size)
    rows = []
    for sigma in args.sigmas:
        for normalize in (False, True):
            config = config_for(data_root, args, sigma, normalize)
            run_dir = args.out / "runs" / f"sigma{sigma:g}-normalize{normalize}"
            metrics = run_experiment(config, run_dir, resume=True, splits=splits)
            result = RunResult.from_metrics(metrics)
            history = metrics["history"]
            rows.append({**result.row(), "normalize": normalize, "h_sd_test": result.h_sd,
                         "h_rms_test": result.h_rms, "h_sd_first": history[0]["h_sd"],
                         "h_sd_last": history[-1]["h_sd"]})
    table = format_table(rows, COLUMNS)
    header = (f"# Normalised noise module: {describe_device(resolve_device('auto'))}, torch "
              f"{torch.__version__}; {args.num_images} faces at "
              f"{args.image_size} px, {args.epochs} epochs, seed {args.seed}; "
              f"{time.perf_counter() - started:.0f} s")
    atomic_write_text(args.out / "table.md", f"{header}\n\n{table}\n")
    print(header + "\n\n" + table)


if __name__ == "__main__":
    main()
