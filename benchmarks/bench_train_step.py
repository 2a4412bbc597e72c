"""Images/s of noisy ARL's adversarial training step (obfuscator + utility head + adversary).

Random inputs (the step's cost does not depend on pixel values), binary tasks, batch 64.
Usage: python benchmarks/bench_train_step.py --sizes 64 178 --split 3 --steps 5
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from noisyarl.builders import untrained_defence
from noisyarl.runtime import StepContext

VARIANTS = {
    "fp32": ("fp32", False),
    "fp32 channels_last": ("fp32", True),
    "bf16 channels_last": ("bf16", True),
}


def images_per_second(size: int, split: int, batch: int, steps: int, precision: str,
                      channels_last: bool, device: torch.device) -> float:
    context = StepContext(device, precision, channels_last)
    # Binary tasks, default params; the CIFAR stem up to 32 px.
    defence = context.prepare_module(untrained_defence("noisy_arl", size, split=split, sigma=1.0))
    optimizers = defence.configure_optimizers()
    images = context.prepare_images(torch.rand(batch, 3, size, size))
    labels = torch.randint(0, 2, (batch,), device=device)
    for _ in range(2):  # warm-up
        defence.train_step(images, labels, labels, optimizers, context)
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        defence.train_step(images, labels, labels, optimizers, context)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 178])
    parser.add_argument("--split", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}")
    print("| size | variant | images/s |\n|---|---|---|")
    for size in args.sizes:
        for name, (precision, channels_last) in VARIANTS.items():
            rate = images_per_second(size, args.split, args.batch, args.steps, precision,
                                     channels_last, device)
            print(f"| {size} | {name} | {rate:.1f} |", flush=True)


if __name__ == "__main__":
    main()
