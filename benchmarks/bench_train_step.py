"""Training images/s of noisy ARL: the two-pass step against the one-forward step, each in fp32,
channels_last, compiled and bf16, beside an authors'-style loop (the 1.0× row).

One run, one machine, the same generated CelebA-format faces (``noisyarl.synthetic.faces``):

* ``authors' style``: per-sample PIL decode + torchvision transforms in a ``DataLoader``
  (``--workers``, default 2), NCHW eager fp32, two-pass step: the client step, then the
  adversary again on ``z.detach()`` (a second forward and backward of the proxy).
* ``two-pass`` / ``one-forward`` rows: batches from the decoded in-memory cache, augmented on
  whole batches; ``one-forward`` is the library's step
  (:func:`noisyarl.methods.adversary.adversarial_update`: one forward of every network, the
  proxy's BN statistics updated once). Variants: ``fp32`` (NCHW eager), ``channels_last``,
  ``compile`` (channels_last + ``train.compile``: client and utility head compiled, the proxy
  eager; the compile time is reported apart and not in images/s) and ``bf16`` (channels_last +
  bf16 autocast).

Data time is included in every row. RN18_3, σ = 1, binary tasks, batch 64.
Usage: python benchmarks/bench_train_step.py --sizes 64 178 --steps 4 [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from bench_speed import JpegFaces, cached_batches
from torch.utils.data import DataLoader

from noisyarl.builders import untrained_defence
from noisyarl.data.registry import load_splits
from noisyarl.methods import Defence
from noisyarl.runtime import StepContext
from noisyarl.runtime.compile import compile_children
from noisyarl.runtime.device import cpu_model
from noisyarl.synthetic.faces import SynthConfig, ensure_celeba

SPLIT = 3
SOURCE_SIZE = 178
#: name -> (precision, channels_last, compile)
VARIANTS = {
    "fp32": ("fp32", False, False),
    "channels_last": ("fp32", True, False),
    "compile": ("fp32", True, True),
    "bf16": ("bf16", True, False),
}
Step = Callable[[Defence, torch.Tensor, torch.Tensor, dict, StepContext], None]


def two_pass_step(defence: Defence, images: torch.Tensor, labels: torch.Tensor,
                  optimizers: dict[str, torch.optim.Optimizer], context: StepContext) -> None:
    """The step the library used before (and the authors' structure plus a second adversary
    pass): client and utility head on ``U - λ·A``, then the proxy again on ``z.detach()``."""
    spec = defence.spec
    with context.autocast():
        z = defence.client(images)
        adversary_loss = spec.private.loss(defence.adversary(z), labels)
        client_loss = (spec.utility.loss(defence.utility_head(z), labels)
                       - spec.params.lambda_adv * adversary_loss)
    optimizers["main"].zero_grad(set_to_none=True)
    client_loss.backward()
    optimizers["main"].step()
    with context.autocast():
        adversary_loss = spec.private.loss(defence.adversary(z.detach()), labels)
    optimizers["adversary"].zero_grad(set_to_none=True)
    adversary_loss.backward()
    optimizers["adversary"].step()


def one_forward_step(defence: Defence, images: torch.Tensor, labels: torch.Tensor,
                     optimizers: dict[str, torch.optim.Optimizer], context: StepContext) -> None:
    defence.train_step(images, labels, labels, optimizers, context)


def jpeg_batches(folder: Path, size: int, batch: int, workers: int) -> Iterator[torch.Tensor]:
    loader = DataLoader(JpegFaces(folder, size), batch_size=batch, shuffle=True, drop_last=True,
                        num_workers=workers, persistent_workers=workers > 0)
    while True:
        for images, _ in loader:
            yield images


def timed_rate(step: Step, batches: Iterator[torch.Tensor], size: int, context: StepContext,
               steps: int, compile: bool) -> tuple[float, float]:
    """(images/s over ``steps`` timed steps, seconds of the warm-up steps)."""
    torch.manual_seed(0)
    defence = context.prepare_module(untrained_defence("noisy_arl", size, split=SPLIT, sigma=1.0))
    if compile:
        compile_children(defence, context.device, skip=defence.proxy_adversaries())
    defence.train()
    optimizers = defence.configure_optimizers()

    def one_step() -> int:
        images = next(batches)
        labels = torch.arange(images.shape[0], device=context.device) % 2
        step(defence, context.prepare_images(images), labels, optimizers, context)
        return images.shape[0]

    started = time.perf_counter()
    one_step()
    one_step()  # warm-up: allocations, oneDNN kernels, compilation
    warm_up = time.perf_counter() - started
    started = time.perf_counter()
    count = sum(one_step() for _ in range(steps))
    return count / (time.perf_counter() - started), warm_up


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 178])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per row")
    parser.add_argument("--images", type=int, default=400, help="generated faces (~80%% train)")
    parser.add_argument("--workers", type=int, default=2,
                        help="DataLoader workers of the authors'-style row")
    parser.add_argument("--out", type=Path, default=Path("bench-train-step"))
    args = parser.parse_args()
    root = args.out / "data"
    ensure_celeba(root, SynthConfig(num_images=args.images, image_size=SOURCE_SIZE, seed=0))
    jpeg_folder = root / "celeba" / "img_align_celeba"
    cpu = torch.device("cpu")
    print(f"# {cpu_model()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; RN18_3 noisy ARL, batch "
          f"{args.batch}, {args.steps} timed steps per row, data included; "
          f"{time.strftime('%Y-%m-%d')}")
    print("\n| size | step | variant | images/s | × authors' style | warm-up (s) |"
          "\n|---|---|---|---|---|---|")
    for size in args.sizes:
        split = load_splits("celeba", root, size, splits=("train",),
                            cache_dir=args.out / "cache")["train"]
        baseline, warm_up = timed_rate(two_pass_step,
                                       jpeg_batches(jpeg_folder, size, args.batch, args.workers),
                                       size, StepContext(cpu), args.steps, compile=False)
        print(f"| {size} | authors' style (JPEG per sample, {args.workers} workers) | fp32 NCHW "
              f"| {baseline:.1f} | 1.00 | {warm_up:.1f} |", flush=True)
        for step_name, step in (("two-pass", two_pass_step), ("one-forward", one_forward_step)):
            for variant, (precision, channels_last, compile) in VARIANTS.items():
                context = StepContext(cpu, precision, channels_last)
                rate, warm_up = timed_rate(step, cached_batches(split, args.batch, context),
                                           size, context, args.steps, compile)
                print(f"| {size} | {step_name} | {variant} | {rate:.1f} | "
                      f"{rate / baseline:.2f} | {warm_up:.1f} |", flush=True)


if __name__ == "__main__":
    main()
