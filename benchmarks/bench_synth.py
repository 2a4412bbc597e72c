"""Benchmark of the procedural face generator: speed, and what a small CNN can learn from it.

Speed: ``write_celeba`` of ``--num-images`` faces at each ``--widths`` (files on disk, JPEG
included), in a pool of ``--workers`` processes. Learnability: ``--learn-images`` CelebA-format
faces at ``--learn-width`` px, centre-cropped to a square, one multi-head CNN (5 strided conv
layers; Adam with cosine decay) trained for ``--steps`` steps of ``--batch`` on the
identity-disjoint train split and scored on the rest. Prints Markdown tables for
``benchmarks/RESULTS.md``.

    python benchmarks/bench_synth.py                   # full run (about 8 min on 2 cores)
    python benchmarks/bench_synth.py --num-images 500 --learn-images 1000 --steps 50  # smoke
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from noisyarl.evaluation.metrics import cramers_v
from noisyarl.runtime.device import cpu_model
from noisyarl.synthetic.faces import (
    CELEBA_ATTRIBUTES,
    FAIRFACE_AGE_BINS,
    FAIRFACE_RACES,
    SynthConfig,
    generate_faces,
    plan_faces,
    write_celeba,
)

BINARY_HEADS = ("Male", "Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Young", "Attractive")
UNDRAWN_HEAD = "Attractive"
MULTICLASS_HEADS = (("race-7", len(FAIRFACE_RACES)), ("age-9", len(FAIRFACE_AGE_BINS)))


@dataclass
class SpeedResult:
    width: int
    height: int
    images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


def measure_speed(num_images: int, width: int, workers: int, seed: int) -> SpeedResult:
    """Time ``write_celeba`` of ``num_images`` faces ``width`` px wide into a temporary folder."""
    config = SynthConfig(num_images=num_images, image_size=width, seed=seed, workers=workers)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_celeba(folder, config)
        seconds = time.perf_counter() - start
    return SpeedResult(width, round(width * 218 / 178), num_images, seconds)


def small_cnn(num_outputs: int) -> nn.Module:
    """5 stride-2 conv blocks (32-64-96-128-128 channels), a 3x3 average pool, one linear layer."""
    channels = (3, 32, 64, 96, 128, 128)
    blocks = [
        nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()
        )
        for c_in, c_out in zip(channels[:-1], channels[1:], strict=True)
    ]
    return nn.Sequential(
        *blocks, nn.AdaptiveAvgPool2d(3), nn.Flatten(), nn.Linear(128 * 9, num_outputs)
    )


def square_crop(images: np.ndarray) -> np.ndarray:
    """Centre rows of uint8 [N, H, W, 3] -> uint8 [N, W, W, 3]."""
    width = images.shape[2]
    top = (images.shape[1] - width) // 2
    return images[:, top : top + width]


def to_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W] in [0, 1] on ``device``."""
    return torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float() / 255.0


def learnability(args: argparse.Namespace) -> list[tuple[str, float, float]]:
    """Train the multi-head CNN once; return (label, test accuracy, majority rate) rows."""
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    config = SynthConfig(
        num_images=args.learn_images,
        image_size=args.learn_width,
        seed=args.seed + 1,
        workers=args.workers,
    )
    faces = generate_faces(config)
    images = square_crop(faces.images)
    binary = np.stack([faces.attribute(name) for name in BINARY_HEADS], 1).astype(np.float32)
    targets = {"binary": binary, "race-7": faces.race, "age-9": faces.age_bin}
    train = np.flatnonzero(faces.partition == 0)
    test = np.flatnonzero(faces.partition != 0)

    model = small_cnn(len(BINARY_HEADS) + sum(k for _, k in MULTICLASS_HEADS))
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    # Cosine decay to 0: the final weights do not depend on where the last noisy step landed.
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    rng = np.random.default_rng(args.seed)
    model.train()
    for step in range(args.steps):
        batch = rng.choice(train, size=args.batch)
        loss = _loss(model(to_batch(images[batch], device)), targets, batch, device)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)
    return _score(model, images, targets, test, device)


def _split_logits(logits: torch.Tensor) -> dict[str, torch.Tensor]:
    parts = {"binary": logits[:, : len(BINARY_HEADS)]}
    start = len(BINARY_HEADS)
    for name, classes in MULTICLASS_HEADS:
        parts[name] = logits[:, start : start + classes]
        start += classes
    return parts


def _loss(logits, targets, batch, device) -> torch.Tensor:
    parts = _split_logits(logits)
    binary = torch.from_numpy(targets["binary"][batch]).to(device)
    loss = F.binary_cross_entropy_with_logits(parts["binary"], binary) * len(BINARY_HEADS)
    for name, _ in MULTICLASS_HEADS:
        labels = torch.from_numpy(targets[name][batch]).to(device)
        loss = loss + F.cross_entropy(parts[name], labels)
    return loss


@torch.no_grad()
def _score(model, images, targets, test, device) -> list[tuple[str, float, float]]:
    model.eval()
    outputs = [
        model(to_batch(images[test[i : i + 256]], device)).cpu() for i in range(0, len(test), 256)
    ]
    parts = _split_logits(torch.cat(outputs))
    rows = []
    for k, name in enumerate(BINARY_HEADS):
        truth = targets["binary"][test, k]
        accuracy = float(((parts["binary"][:, k] > 0).numpy() == truth).mean())
        rows.append((name, accuracy, float(max(truth.mean(), 1 - truth.mean()))))
    for name, classes in MULTICLASS_HEADS:
        truth = targets[name][test]
        accuracy = float((parts[name].argmax(1).numpy() == truth).mean())
        rows.append(
            (name, accuracy, float(np.bincount(truth, minlength=classes).max() / len(test)))
        )
    return rows


def realised_associations(seed: int, num_images: int = 5000) -> dict[str, float]:
    plan = plan_faces(SynthConfig(num_images=num_images, seed=seed))
    column = {
        name: plan.attributes[:, CELEBA_ATTRIBUTES.index(name)]
        for name in ("Male", "Smiling", "Mouth_Slightly_Open")
    }
    return {
        "Mouth_Slightly_Open vs Smiling": cramers_v(
            column["Mouth_Slightly_Open"], column["Smiling"]
        ),
        "Male vs Smiling": cramers_v(column["Male"], column["Smiling"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=5000)
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 178])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--learn-images", type=int, default=6000)
    parser.add_argument("--learn-width", type=int, default=178)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-learn", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {cpu_model()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, device {args.device}"
    )

    if not args.skip_speed:
        print("\n| image (W x H) | images | workers | seconds | images/s |\n|---|---|---|---|---|")
        for width in args.widths:
            result = measure_speed(args.num_images, width, args.workers, args.seed)
            print(
                f"| {result.width} x {result.height} | {result.images} | {args.workers} | "
                f"{result.seconds:.1f} | {result.images_per_second:.0f} |",
                flush=True,
            )

    print("\n| pair | realised Cramér's V (5000 faces) |\n|---|---|")
    for pair, value in realised_associations(args.seed).items():
        print(f"| {pair} | {value:.3f} |")

    if not args.skip_learn:
        start = time.perf_counter()
        rows = learnability(args)
        minutes = (time.perf_counter() - start) / 60
        print(f"\nlearnability: {minutes:.1f} min\n")
        print("| label | test accuracy | majority rate |\n|---|---|---|")
        for name, accuracy, majority in rows:
            note = " (not drawn)" if name == UNDRAWN_HEAD else ""
            print(f"| {name}{note} | {accuracy:.3f} | {majority:.3f} |")


if __name__ == "__main__":
    main()
