"""Benchmark of the Ray executor against the serial one: one grid of tiny runs, both ways.

The grid: noisy ARL (RN18_1) at each ``--sigmas`` x each ``--seeds`` (6 runs by default) on
generated CelebA-format faces, ``--max-train`` training images, one epoch, the leakage attack
only. Serial: the data decoded once, then every run timed on its own in this process. Ray: a
local instance with ``--ray-cpus`` CPUs, every run one task of ``executor.cpus_per_run: 1``
(one torch thread, like the serial runs). Reports the wall time of each, the start-up of Ray,
a trivial task's round trip (the first one, which waits for a worker, and the mean of
``--noop-tasks`` more), and the overhead per run task: (Ray's wall time - the serial runs'
summed time) / runs, with ``--ray-cpus 1`` so that Ray runs one task at a time as serial does.
Checks that both executors gave the same metrics. Prints Markdown for ``benchmarks/RESULTS.md``.

    OMP_NUM_THREADS=1 python benchmarks/bench_ray.py --out /tmp/bench-ray   # about 3 min
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from noisyarl.builders import load_data
from noisyarl.config import ExecutorConfig, config_from_dict
from noisyarl.runners.executor import RunJob, execute, import_ray
from noisyarl.runtime.device import cpu_model
from noisyarl.synthetic.faces import SynthConfig, write_celeba


def grid(args: argparse.Namespace, root: Path, out: Path) -> list[RunJob]:
    """One job per (σ, seed), its run directory under ``out``."""
    jobs = []
    for sigma in args.sigmas:
        config = config_from_dict({
            "name": "bench", "seeds": list(args.seeds),
            "data": {"dataset": "celeba", "root": str(root), "image_size": args.image_size,
                     "max_train": args.max_train, "max_valid": args.max_train // 2,
                     "max_test": args.max_train // 2},
            "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
            "method": {"name": "noisy_arl", "split": 1, "sigma": sigma},
            "train": {"epochs": 1, "batch_size": 16, "progress": False},
            "attacks": {"leakage": {"epochs": 1, "batch_size": 16},
                        "reconstruction": {"enabled": False}, "noise_draws": 1},
        })
        jobs += [RunJob(config.with_seed(seed), out / config.with_seed(seed).run_name())
                 for seed in config.run_seeds()]
    return jobs


def run_serial(jobs: list[RunJob]) -> tuple[float, list[float], list[dict]]:
    """Wall time of the whole serial grid (decoding included), each run's time, the metrics."""
    start = time.perf_counter()
    splits = load_data(jobs[0].config, progress=False)
    times, metrics = [], []
    for job in jobs:
        begun = time.perf_counter()
        metrics += execute([job], ExecutorConfig(), splits=splits)
        times.append(time.perf_counter() - begun)
    return time.perf_counter() - start, times, metrics


def noop() -> int:
    return 0


def trivial_task_seconds(ray, count: int) -> tuple[float, float]:
    """Round trip of the first trivial task (it waits for a worker) and the mean of ``count``
    more, one after another."""
    task = ray.remote(num_cpus=1)(noop)
    start = time.perf_counter()
    ray.get(task.remote())
    first = time.perf_counter() - start
    times = []
    for _ in range(count):
        start = time.perf_counter()
        ray.get(task.remote())
        times.append(time.perf_counter() - start)
    return first, statistics.fmean(times)


def run_ray(jobs: list[RunJob], cpus: int, noop_tasks: int) -> dict[str, float | list]:
    """Ray's start-up, trivial-task round trips, the grid's wall time and its metrics."""
    ray = import_ray()
    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    started = time.perf_counter() - start
    try:
        first, warm = trivial_task_seconds(ray, noop_tasks)
        start = time.perf_counter()
        metrics = execute(jobs, ExecutorConfig(name="ray", cpus_per_run=1))
        wall = time.perf_counter() - start
    finally:
        start = time.perf_counter()
        ray.shutdown()
        stopped = time.perf_counter() - start
    return {"init": started, "first_task": first, "warm_task": warm, "wall": wall,
            "shutdown": stopped, "metrics": metrics}


def largest_difference(a: list[dict], b: list[dict]) -> float:
    """The largest |difference| of utility, privacy and Δ between two lists of run metrics."""
    return max(abs(x[key] - y[key]) for x, y in zip(a, b, strict=True)
               for key in ("utility", "privacy", "delta"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="data and runs go here")
    parser.add_argument("--sigmas", type=float, nargs="+", default=[0.0, 0.5, 2.0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--max-train", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=40)
    parser.add_argument("--ray-cpus", type=int, default=1)
    parser.add_argument("--noop-tasks", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the Ray tasks of cpus_per_run 1 train with one thread too
    root = args.out / "data"
    if not (root / "celeba").exists():
        write_celeba(root, SynthConfig(num_images=360, image_size=48, seed=3))
    serial_wall, run_times, serial_metrics = run_serial(grid(args, root, args.out / "serial"))
    jobs = grid(args, root, args.out / "ray")
    ray = run_ray(jobs, args.ray_cpus, args.noop_tasks)
    runs, summed = len(jobs), sum(run_times)
    print(f"{runs} runs ({len(args.sigmas)} σ x {len(args.seeds)} seeds, {args.max_train} "
          f"training images at {args.image_size} px, 1 epoch); {cpu_model()} "
          f"{os.cpu_count()} cores, torch {torch.__version__}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, Ray with {args.ray_cpus} CPU(s)\n")
    print("| measure | seconds |\n|---|---:|")
    for name, seconds in [
        ("serial grid, wall (data decoded once)", serial_wall),
        ("serial runs, summed", summed),
        ("serial run, mean", summed / runs),
        ("Ray grid, wall (excluding start-up)", ray["wall"]),
        ("Ray start-up (`ray.init`, local instance)", ray["init"]),
        ("Ray shut-down", ray["shutdown"]),
        ("trivial task, first (waits for a worker)", ray["first_task"]),
        (f"trivial task, mean of {args.noop_tasks} more", ray["warm_task"]),
        ("overhead per run task: (Ray wall - serial runs summed) / runs",
         (ray["wall"] - summed) / runs),
    ]:
        print(f"| {name} | {seconds:.3f} |")
    print(f"\nlargest |difference| of utility, privacy, Δ between the executors: "
          f"{largest_difference(serial_metrics, ray['metrics']):.3g} pp")


if __name__ == "__main__":
    main()
