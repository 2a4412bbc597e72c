"""Utility and privacy of the int8 client against the fp32 client, under the converged
leakage attacker, paired over noise draws (``noisyarl.deploy.int8_quality``).

One run:

1. generates CelebA-format faces (``--images`` at ``--image-size`` px, split
   ``--split-fractions``, so that the test split has ≥ 1,000 faces by default) and trains
   noisy ARL (RN18_3, σ = ``--sigma``, ``--epochs`` epochs) on Smiling vs Male in
   ``OUT/run`` (reused when present);
2. exports the client in fp32 and int8 (``noisyarl export --int8``'s code: static QDQ
   calibrated on 128 training images, noise in float32);
3. for each seed, scores both files: the run's utility head on z of the test split (mean of
   the run's 5 test noise draws) and a fresh proxy-shaped attacker trained until its
   validation score stops improving (budget ≥ the defence's steps); the same seed gives both
   files the same noise draws and attacker initialisation.

Writes ``OUT/int8_quality.md`` and ``OUT/int8_quality.json``.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_int8_quality.py --out DIR [--seeds 0 1 2 3 4]
       [--images 4000] [--image-size 64] [--epochs 5] [--sigma 1]
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

import onnxruntime
import torch
from bench_client_int8 import tiny_run

from noisyarl.deploy.export import export_client
from noisyarl.deploy.int8_quality import int8_quality
from noisyarl.deploy.quantize import export_int8_client
from noisyarl.runtime.device import cpu_model
from noisyarl.utils.io import atomic_write_text, write_json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--images", type=int, default=4000)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--split-fractions", type=float, nargs=3, default=(0.6, 0.15, 0.25))
    args = parser.parse_args()

    out = Path(args.out)
    run_dir = tiny_run(out, args.images, args.epochs, args.sigma, args.image_size,
                       tuple(args.split_fractions))
    fp32 = export_client(run_dir, "onnx")
    int8 = export_int8_client(run_dir, fp32.path)
    result = int8_quality(run_dir, fp32.path, int8.path, seeds=args.seeds)
    header = (f"# int8 vs fp32 client quality, {date.today()}\n\n"
              f"{cpu_model()}, torch {torch.__version__}, "
              f"ONNX Runtime {onnxruntime.__version__}; noisy ARL RN18_3, "
              f"{args.image_size} px, {args.images} generated faces, {args.epochs} epochs; "
              f"int8 RMS error {100 * int8.check.relative_error:.2f} % of RMS(z) "
              f"(noise zeroed, {int8.check.image_source}).\n")
    text = header + "\n" + result.markdown()
    print(text)
    atomic_write_text(out / "int8_quality.md", text)
    write_json(out / "int8_quality.json", result.to_dict())


if __name__ == "__main__":
    main()
