"""The training-step table on one GPU: fp32, channels_last, bf16, fp16 and torch.compile.

One prepared script that fits in 10 minutes on one GPU (``--budget`` seconds, default 540:
a variant that would start after the budget is skipped and marked so). It times the
adversarial noisy-ARL step (RN18_K, σ = 1, binary tasks) fed from the in-memory uint8 cache
through ``iterate_batches`` (pinned memory, one batch gathered ahead, copies without blocking,
augmentation on the GPU), and prints a Markdown table headed by the device's name:

- ``fp32 NCHW`` (TF32 as torch's defaults leave it: off for matmuls, on for cuDNN convolutions),
- ``fp32 channels_last``, ``bf16 channels_last``, ``fp16 channels_last`` (gradient scaler),
- ``bf16 channels_last + torch.compile`` (every sub-module of the defence compiled; compile
  time reported apart, not in the rate),
- the data feed alone (cache -> augmented batch on the device).

Usage on the GPU machine:  python benchmarks/bench_gpu.py
CPU smoke test of the script itself: python benchmarks/bench_gpu.py --device cpu --steps 2 \\
    --size 64 --batch 8 --compile-backend aot_eager
"""

from __future__ import annotations

import argparse
import time

import torch

from noisyarl.builders import untrained_defence
from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit, LabelInfo
from noisyarl.runtime import StepContext, describe_device

BINARY_INFO = LabelInfo(kind="binary")
#: name -> (precision, channels_last, compile)
VARIANTS = {
    "fp32 NCHW": ("fp32", False, False),
    "fp32 channels_last": ("fp32", True, False),
    "bf16 channels_last": ("bf16", True, False),
    "fp16 channels_last (grad scaler)": ("fp16", True, False),
    "bf16 channels_last + torch.compile": ("bf16", True, True),
}


def cache(count: int, size: int) -> ImageSplit:
    """A decoded-image cache of ``count`` random uint8 images (the step's cost does not depend
    on pixel values)."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (count, 3, size, size), dtype=torch.uint8,
                           generator=generator)
    return ImageSplit(images=images, labels={"label": torch.arange(count) % 2},
                      label_info={"label": BINARY_INFO})


def batches(split: ImageSplit, batch: int, context: StepContext):
    epoch = 0
    while True:
        epoch += 1
        for images, labels in iterate_batches(
                split, batch, shuffle=True, augment=True,
                generator=torch.Generator().manual_seed(epoch), drop_last=True,
                device=context.device, channels_last=context.channels_last):
            yield images, labels["label"]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(split: ImageSplit, args: argparse.Namespace, precision: str, channels_last: bool,
            compiled: bool) -> dict[str, float]:
    """images/s of the step (data included), warm-up seconds, peak memory in GiB."""
    device = torch.device(args.device)
    context = StepContext(device, precision, channels_last)
    torch.manual_seed(0)  # binary tasks, default params; the CIFAR stem up to 32 px
    defence = untrained_defence("noisy_arl", args.size, split=args.split, sigma=1.0)
    defence = context.prepare_module(defence).train()
    if compiled:
        for name, child in list(defence.named_children()):
            setattr(defence, name, torch.compile(child, backend=args.compile_backend))
    optimizers = defence.configure_optimizers()
    feed = batches(split, args.batch, context)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def step() -> None:
        images, labels = next(feed)
        defence.train_step(images, labels, labels, optimizers, context)

    started = time.perf_counter()
    for _ in range(args.warmup):  # compilation, cuDNN autotuning, allocator
        step()
    synchronize(device)
    warmup = time.perf_counter() - started
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    synchronize(device)
    rate = args.batch * args.steps / (time.perf_counter() - started)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else 0.0
    return {"rate": rate, "warmup": warmup, "peak_gib": peak}


def feed_rate(split: ImageSplit, args: argparse.Namespace) -> float:
    context = StepContext(torch.device(args.device), "bf16", True)
    feed = batches(split, args.batch, context)
    next(feed)
    synchronize(context.device)
    started = time.perf_counter()
    for _ in range(args.steps):
        next(feed)
    synchronize(context.device)
    return args.batch * args.steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", type=int, default=178)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--split", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile-backend", default="inductor")
    parser.add_argument("--budget", type=float, default=540.0,
                        help="seconds; variants that would start later are skipped")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("no CUDA device; use --device cpu for a smoke test")
    began = time.perf_counter()
    split = cache(args.batch * (args.steps + args.warmup + 1), args.size)
    print(f"# {describe_device(device)}; torch {torch.__version__}; RN18_{args.split} noisy-ARL "
          f"step, {args.size} px, batch {args.batch}, {args.steps} timed steps after "
          f"{args.warmup} warm-up; {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    print("| variant | images/s | × fp32 NCHW | warm-up s | peak GiB |\n|---|---|---|---|---|",
          flush=True)
    baseline = None
    for name, (precision, channels_last, compiled) in VARIANTS.items():
        if precision == "fp16" and device.type != "cuda":
            print(f"| {name} | n/a (fp16 needs CUDA) | | | |", flush=True)
            continue
        if time.perf_counter() - began > args.budget:
            print(f"| {name} | skipped (time budget) | | | |", flush=True)
            continue
        result = measure(split, args, precision, channels_last, compiled)
        baseline = baseline or result["rate"]
        print(f"| {name} | {result['rate']:.1f} | {result['rate'] / baseline:.2f} | "
              f"{result['warmup']:.1f} | {result['peak_gib']:.2f} |", flush=True)
        torch._dynamo.reset()
    print(f"\ndata feed alone (cache -> augmented {args.size} px batch on {device.type}): "
          f"{feed_rate(split, args):.0f} images/s; total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
