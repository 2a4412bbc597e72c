"""Training speed on CPU: cached whole-batch data + channels_last + bf16 against the authors'
style (per-sample JPEG decoding), the data pipeline alone, and 1 against 2 processes.

One run measures, on generated CelebA-format JPEG faces at 178 px (``noisyarl.synthetic.faces``):

1. The adversarial noisy-ARL step (RN18_3, σ = 1, batch 64, binary tasks), data included:
   - ``baseline``: plain fp32 NCHW eager step fed by a torch ``DataLoader`` over the JPEG files,
     PIL decode + torchvision transforms per sample (centre crop, resize, ColorJitter(0.1, 0.1),
     random flip, ToTensor), as the authors' code does;
   - ``fp32``, ``channels_last``, ``channels_last + bf16``: the same step fed from the decoded
     in-memory cache, augmented on whole batches (``noisyarl.data.augment.iterate_batches``);
   each in images/s and as a ratio to the baseline.
2. The data pipeline alone: cached augmented batches against decoding JPEGs (images/s).
3. 1 process with 2 threads against 2 processes with 1 thread each (``torchrun``, gloo; global
   batch 64 split 32 + 32; gradients averaged, batch norm synchronised), channels_last + bf16.

Usage: python benchmarks/bench_speed.py [--steps 4] [--images 400] [--workers 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

from noisyarl.builders import untrained_defence
from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit
from noisyarl.data.registry import load_splits
from noisyarl.runtime import StepContext
from noisyarl.runtime.device import cpu_model
from noisyarl.runtime.distributed import init_distributed
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba

SIZE = 178
SPLIT = 3
CACHED_VARIANTS = {"fp32": ("fp32", False), "channels_last": ("fp32", True),
                   "channels_last + bf16": ("bf16", True)}


class JpegFaces(Dataset):
    """The authors' style: one JPEG decoded and transformed per sample, in the loader."""

    def __init__(self, folder: Path, size: int = SIZE) -> None:
        self.files = sorted(folder.glob("*.jpg"))
        self.labels = torch.arange(len(self.files)) % 2
        self.transform = transforms.Compose([
            transforms.Lambda(lambda image: transforms.functional.center_crop(
                image, min(image.size))),
            transforms.Resize(size),
            transforms.ColorJitter(brightness=0.1, contrast=0.1),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
        ])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        with Image.open(self.files[index]) as image:
            return self.transform(image.convert("RGB")), self.labels[index]


def jpeg_batches(folder: Path, batch: int, workers: int) -> Iterator[torch.Tensor]:
    loader = DataLoader(JpegFaces(folder), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=False)
    while True:
        for images, _ in loader:
            yield images


def cached_batches(split: ImageSplit, batch: int, context: StepContext) -> Iterator[torch.Tensor]:
    env = context.distributed
    epoch = 0
    while True:
        epoch += 1
        generator = torch.Generator().manual_seed(epoch)
        for images, _ in iterate_batches(split, batch, shuffle=True, augment=True,
                                         generator=generator, drop_last=True,
                                         device=context.device,
                                         channels_last=context.channels_last,
                                         rank=env.rank, world_size=env.world_size):
            yield images


def step_rate(batches: Iterator[torch.Tensor], context: StepContext, steps: int) -> float:
    """Images/s (all ranks together) of the noisy-ARL step, time to fetch the batch included."""
    torch.manual_seed(0)
    defence = untrained_defence("noisy_arl", SIZE, split=SPLIT, sigma=1.0)
    defence = context.prepare_module(defence).train()
    optimizers = defence.configure_optimizers()

    def one_step() -> int:
        images = next(batches)
        labels = torch.arange(images.shape[0], device=context.device) % 2
        defence.train_step(images, labels, labels, optimizers, context)
        return images.shape[0]

    one_step()  # warm-up (allocations, oneDNN kernels)
    started = time.perf_counter()
    count = sum(one_step() for _ in range(steps))
    return count * context.distributed.world_size / (time.perf_counter() - started)


def pipeline_rate(batches: Iterator[torch.Tensor], count: int) -> float:
    """Images/s of a batch iterator alone (``count`` batches after one warm-up batch)."""
    next(batches)
    started = time.perf_counter()
    images = sum(next(batches).shape[0] for _ in range(count))
    return images / (time.perf_counter() - started)


def prepare_data(out: Path, num_images: int) -> tuple[Path, ImageSplit]:
    root = out / "data"
    ensure_celeba(root, SynthConfig(num_images=num_images, image_size=SIZE, seed=0))
    split = load_splits("celeba", root, SIZE, splits=("train",), cache_dir=out / "cache")["train"]
    return root / "celeba" / "img_align_celeba", split


def ddp_worker(args: argparse.Namespace) -> None:
    """One process of the 1-vs-2-process comparison (also runs alone)."""
    torch.set_num_threads(args.threads)
    env = init_distributed("cpu")
    _, split = prepare_data(args.out, args.images)
    context = StepContext(torch.device("cpu"), "bf16", True)
    rate = step_rate(cached_batches(split, args.batch, context), context, args.steps)
    if env.is_main:
        print("RESULT " + json.dumps({"processes": env.world_size, "threads": args.threads,
                                      "images_per_second": rate}), flush=True)


def run_processes(args: argparse.Namespace, processes: int, threads: int) -> float:
    script = [str(Path(__file__).resolve()), "--ddp-worker", "--threads", str(threads),
              "--steps", str(args.steps), "--images", str(args.images), "--out", str(args.out),
              "--batch", str(args.batch)]
    if processes == 1:
        command = [sys.executable, *script]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node",
                   str(processes), "--master_port", "29533", *script]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in finished.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))["images_per_second"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4, help="timed steps per variant")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--images", type=int, default=400, help="generated faces (~80%% train)")
    parser.add_argument("--workers", type=int, default=0,
                        help="DataLoader workers of the JPEG baseline")
    parser.add_argument("--out", type=Path, default=Path("bench-speed"))
    parser.add_argument("--ddp-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.ddp_worker:
        ddp_worker(args)
        return

    jpeg_folder, split = prepare_data(args.out, args.images)
    cpu = torch.device("cpu")
    print(f"# {cpu_model()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; RN18_3 noisy-ARL step, "
          f"{SIZE} px, batch {args.batch}, {args.steps} timed steps; {len(split)} train images; "
          f"{time.strftime('%Y-%m-%d')}")
    rates = {"baseline: fp32 NCHW, per-sample JPEG decoding": step_rate(
        jpeg_batches(jpeg_folder, args.batch, args.workers), StepContext(cpu), args.steps)}
    for name, (precision, channels_last) in CACHED_VARIANTS.items():
        context = StepContext(cpu, precision, channels_last)
        rates[f"cached, {name}"] = step_rate(cached_batches(split, args.batch, context),
                                             context, args.steps)
    baseline = next(iter(rates.values()))
    print("\n| step (data included) | images/s | × baseline |\n|---|---|---|")
    for name, rate in rates.items():
        print(f"| {name} | {rate:.1f} | {rate / baseline:.2f} |", flush=True)

    batches = max(1, len(split) // args.batch - 1)
    cached = pipeline_rate(cached_batches(split, args.batch, StepContext(cpu)), batches * 3)
    jpeg = pipeline_rate(jpeg_batches(jpeg_folder, args.batch, args.workers), batches)
    print("\n| data pipeline alone | images/s |\n|---|---|")
    print(f"| cached uint8 + whole-batch augmentation | {cached:.0f} |")
    print(f"| per-sample JPEG decode + transforms ({args.workers} workers) | {jpeg:.0f} |")

    one = run_processes(args, 1, 2)
    two = run_processes(args, 2, 1)
    print("\n| channels_last + bf16, cached | images/s |\n|---|---|")
    print(f"| 1 process × 2 threads | {one:.1f} |")
    print(f"| 2 processes × 1 thread (torchrun, gloo) | {two:.1f} |")


if __name__ == "__main__":
    main()
