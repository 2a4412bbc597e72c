"""fp32 against int8 client latency in ONNX Runtime: noisy ARL's RN18_3 at 178 px, batch 1 and 32.

One run:

1. generates CelebA-format faces at 178 px (``noisyarl.synthetic.faces``; ``--images``) in
   ``OUT/data`` and trains a tiny noisy-ARL run on them (RN18_3, σ = ``--sigma``, 178 px,
   ``--epochs`` epochs, no attacks) in ``OUT/run``; both are reused when present;
2. exports the client to ``OUT/run/export/client.onnx`` and, with ``noisyarl export --int8``'s
   code (static QDQ, calibrated on ``--calibration-images`` training images, noise in float32),
   to ``client.int8.onnx``; prints both files' sizes and the int8 check;
3. times both with ``noisyarl.deploy.latency.latency_of_run`` (``onnxruntime`` and
   ``onnxruntime_int8``; median and p90 of ``--runs`` runs after ``--warmup``), at the thread
   count of ``OMP_NUM_THREADS`` / torch's default.

Writes ``OUT/int8_latency.md`` and ``OUT/int8_latency.json``.

Usage: OMP_NUM_THREADS=1 python benchmarks/bench_client_int8.py --out DIR [--runs 50]
       [--warmup 5] [--epochs 1] [--images 400] [--calibration-images 128]
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

import onnxruntime
import torch

from noisyarl.config import config_from_dict
from noisyarl.deploy.export import export_client
from noisyarl.deploy.latency import latency_of_run
from noisyarl.deploy.quantize import export_int8_client
from noisyarl.runners.experiment import set_up, train
from noisyarl.runtime.device import cpu_model
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba
from noisyarl.utils.io import atomic_write_text, write_json

IMAGE_SIZE, SPLIT = 178, 3


def tiny_run(out: Path, images: int, epochs: int, sigma: float,
             image_size: int = IMAGE_SIZE,
             split_fractions: tuple[float, float, float] | None = None) -> Path:
    """``OUT/run``: noisy ARL (RN18_3, ``image_size`` px) trained ``epochs`` epochs on
    generated faces (a finished run is reused)."""
    run_dir = out / "run"
    if (run_dir / "checkpoints" / "best.pt").is_file():
        return run_dir
    root = out / "data"
    ensure_celeba(root, SynthConfig(num_images=images, image_size=image_size, seed=3,
                                    split_fractions=split_fractions), progress=True)
    config = config_from_dict({
        "name": "int8-bench", "data": {"dataset": "celeba", "root": str(root),
                                       "image_size": image_size},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": SPLIT, "sigma": sigma},
        "train": {"epochs": epochs, "batch_size": 32, "progress": True},
    })
    train(set_up(config, run_dir))
    return run_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--sigma", type=float, default=1.0)
    parser.add_argument("--calibration-images", type=int, default=128)
    args = parser.parse_args()

    out = Path(args.out)
    run_dir = tiny_run(out, args.images, args.epochs, args.sigma)
    fp32 = export_client(run_dir, "onnx")
    int8 = export_int8_client(run_dir, fp32.path, calibration_images=args.calibration_images)
    sizes = {"fp32_bytes": fp32.path.stat().st_size, "int8_bytes": int8.path.stat().st_size}
    report = latency_of_run(run_dir, batch_sizes=(1, 32), backends=("onnxruntime",),
                            runs=args.runs, warmup=args.warmup)
    header = (f"{cpu_model()}, {report.threads} threads, "
              f"torch {torch.__version__}, ONNX Runtime {onnxruntime.__version__}; "
              f"RN18_3 at {IMAGE_SIZE} px; fp32 {sizes['fp32_bytes'] / 1e6:.1f} MB, int8 "
              f"{sizes['int8_bytes'] / 1e6:.1f} MB; int8 RMS error "
              f"{100 * int8.check.relative_error:.2f}% of RMS(z) on "
              f"{int8.check.image_source} (noise zeroed; σ = {args.sigma:g})")
    text = "\n".join([header, "", report.markdown(), ""])
    print(text)
    atomic_write_text(out / "int8_latency.md", text)
    write_json(out / "int8_latency.json", {"latency": report.to_dict(), "sizes": sizes,
                                          "int8_check": asdict(int8.check),
                                          "quantization": int8.metadata["quantization"]})


if __name__ == "__main__":
    main()
