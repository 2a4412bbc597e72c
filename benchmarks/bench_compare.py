"""Comparison tables of every defence on generated CelebA-format faces, with client cost.

Runs ``noisyarl.runners.compare.run_comparison`` for the two CelebA pairs of the paper's tables
(private Male / utility Smiling, and the correlated private Mouth_Slightly_Open / utility
Smiling) on one generated dataset, plus the client cost of every method at the paper's 178 px.
The paper configs are used as they are except for the data root, the sizes and the noisy-ARL σ:
the appendix's σ values (15360 for table 3) belong to real CelebA at 178 px and long training.

Usage: python benchmarks/bench_compare.py --out /tmp/bench-compare [--num-images 4000]
       [--image-size 64] [--epochs 3] [--sigma 9]
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import time
from pathlib import Path

import torch

from noisyarl.config import CompareEntry, MethodConfig, load_config
from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.evaluation.report import format_table
from noisyarl.methods import METHODS, DefenceSpec, build_defence, method_params
from noisyarl.runners.compare import TABLE_COLUMNS, run_comparison
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba

PAIRS = {
    "male_smiling": "configs/paper/celeba_male_smiling.yaml",
    "mouth_smiling": "configs/paper/table3_celeba_mouth_smiling.yaml",
}
BASELINES = ("upper_bound", "maxent_arl", "deep_obfuscator", "disco")


def client_costs(image_size: int) -> list[dict]:
    """Client cost of every method (noisy ARL for K = 1..4) for one image of ``image_size``."""
    binary = Task("label", LabelInfo(kind="binary"))
    rows = []
    for name in METHODS:
        for split in (1, 2, 3, 4) if METHODS[name].has_split else (3,):
            spec = DefenceSpec(binary, binary, split, 0.0, True, method_params(name, {}),
                               image_size)
            cost = measure_client_cost(build_defence(name, spec).client,
                                       (3, image_size, image_size))
            label = f"{name} RN18_{split}" if METHODS[name].has_split else name
            rows.append({"method": label, "client_gflops": cost.gflops,
                         "client_params_m": cost.params / 1e6,
                         "peak_mib": cost.peak_activation_bytes / 2**20,
                         "z_shape": "x".join(map(str, cost.z_shape)),
                         "z_kib": cost.z_bytes / 1024})
    return rows


def bench_config(path: str, data_root: Path, args: argparse.Namespace):
    """The paper config at benchmark size: every baseline, ARL (σ = 0) and noisy ARL (σ)."""
    config = load_config(path, [
        f"data.root={data_root}", f"data.image_size={args.image_size}", "data.cache_dir=null",
        f"train.epochs={args.epochs}", f"attacks.leakage.epochs={args.epochs}",
        f"attacks.reconstruction.epochs={args.reconstruction_epochs}",
    ])
    labels = {"upper_bound": "RN18 (upper bound)", "maxent_arl": "MaxEnt-ARL",
              "deep_obfuscator": "DeepObfuscator", "disco": "DISCO"}
    compare = [CompareEntry(labels[name], MethodConfig(name=name)) for name in BASELINES]
    compare += [
        CompareEntry("ARL RN18_3 (σ=0)", MethodConfig(name="noisy_arl", split=3, sigma=0.0)),
        CompareEntry(f"noisy ARL RN18_3 (σ={args.sigma:g})",
                     MethodConfig(name="noisy_arl", split=3, sigma=args.sigma)),
    ]
    return dataclasses.replace(config, compare=compare)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--num-images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--reconstruction-epochs", type=int, default=2)
    parser.add_argument("--sigma", type=float, default=9.0)
    parser.add_argument("--pairs", nargs="+", choices=sorted(PAIRS), default=sorted(PAIRS))
    args = parser.parse_args()
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} "
          "threads, CPU")
    print("\nClient cost at 178 x 178 (one image):\n")
    print(format_table(client_costs(178), [
        ("method", "client", "{}"), ("client_gflops", "GFLOPs", "{:.3f}"),
        ("client_params_m", "params (M)", "{:.3f}"), ("peak_mib", "peak act. (MiB)", "{:.1f}"),
        ("z_shape", "z shape", "{}"), ("z_kib", "z (KiB)", "{:.1f}")]))
    data_root = args.out / "data"
    ensure_celeba(data_root, SynthConfig(num_images=args.num_images, image_size=args.image_size,
                                         seed=0), progress=True)
    for pair in args.pairs:
        started = time.perf_counter()
        rows = run_comparison(bench_config(PAIRS[pair], data_root, args), args.out / pair,
                              resume=True)
        print(f"\n## {pair} ({time.perf_counter() - started:.0f} s)\n")
        print(format_table(rows, TABLE_COLUMNS))


if __name__ == "__main__":
    main()
