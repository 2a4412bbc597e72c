"""Client latency on this machine: PyTorch eager, channels_last and ONNX Runtime.

For each backend and batch size the client (noise inside, as deployed) runs ``warmup`` times,
then ``runs`` timed times; we report the median and 90th percentile in milliseconds, images/s,
and the achieved FLOP/s as a fraction of the machine's peak, measured as the best throughput
of a large float32 matrix product (:func:`peak_flops`). FLOPs count convolutions and matrix
products at 2 per multiply-add (:mod:`noisyarl.evaluation.cost`).
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from noisyarl.builders import untrained_defence
from noisyarl.deploy.export import client_for_export, onnx_bytes
from noisyarl.evaluation.cost import measure_client_cost
from noisyarl.methods import METHODS
from noisyarl.utils.progress import progress as progress_bar

BACKENDS = ("eager", "channels_last", "onnxruntime")


@dataclass
class LatencyRow:
    """One (client, backend, batch size) measurement. Times in milliseconds per batch."""

    client: str
    backend: str
    batch_size: int
    median_ms: float
    p90_ms: float
    images_per_second: float
    gflop_per_second: float
    fraction_of_peak: float


@dataclass
class LatencyReport:
    """Rows for every client and backend, the peak they are compared with, and the machine."""

    peak_gflop_per_second: float
    image_size: int
    runs: int
    warmup: int
    threads: int
    machine: dict[str, str] = field(default_factory=dict)
    rows: list[LatencyRow] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The rows as a Markdown table."""
        lines = ["| client | backend | batch | median ms | p90 ms | img/s | GFLOP/s | of peak |",
                 "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.client} | {r.backend} | {r.batch_size} | {r.median_ms:.2f} | "
                  f"{r.p90_ms:.2f} | {r.images_per_second:.1f} | {r.gflop_per_second:.1f} | "
                  f"{100 * r.fraction_of_peak:.1f}% |" for r in self.rows]
        return "\n".join(lines)


def peak_flops(size: int = 2048, repeats: int = 10) -> float:
    """Best FLOP/s of a ``size x size`` float32 matrix product (2·n³ FLOPs) over ``repeats``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def time_calls(call: Callable[[], Any], runs: int, warmup: int) -> list[float]:
    """Seconds of each of ``runs`` calls of ``call`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return times


def backend_call(client: nn.Module, backend: str, images: torch.Tensor) -> Callable[[], Any]:
    """A zero-argument function that runs ``client`` on ``images`` with ``backend``."""
    if backend == "onnxruntime":
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = onnxruntime.InferenceSession(onnx_bytes(client, tuple(images.shape[1:])),
                                               options, providers=["CPUExecutionProvider"])
        array = np.ascontiguousarray(images.numpy())
        return lambda: session.run(None, {"images": array})
    if backend == "channels_last":
        client = client_for_export(client).to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    elif backend != "eager":
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(BACKENDS)})")

    def run() -> torch.Tensor:
        with torch.inference_mode():
            return client(images)

    return run


def measure_latency(
    clients: dict[str, nn.Module],
    image_size: int,
    *,
    batch_sizes: Sequence[int] = (1, 32),
    backends: Sequence[str] = BACKENDS,
    runs: int = 50,
    warmup: int = 5,
    progress: bool = True,
) -> LatencyReport:
    """Latency of every client in ``clients`` (name -> module) for each backend and batch size."""
    peak = peak_flops()
    report = LatencyReport(0.0, image_size, runs, warmup, torch.get_num_threads(),
                           machine={"cpu": platform.processor() or platform.machine(),
                                    "torch": torch.__version__})
    shape = (3, image_size, image_size)
    jobs = [(name, backend, batch) for name in clients for backend in backends
            for batch in batch_sizes]
    for name, backend, batch in progress_bar(jobs, desc="latency", enabled=progress, leave=False):
        client = client_for_export(clients[name])
        flops = measure_client_cost(client, shape).flops * batch
        images = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0))
        times = time_calls(backend_call(client, backend, images), runs, warmup)
        median = statistics.median(times)
        report.rows.append(LatencyRow(
            client=name, backend=backend, batch_size=batch, median_ms=1e3 * median,
            p90_ms=1e3 * float(np.percentile(times, 90)), images_per_second=batch / median,
            gflop_per_second=flops / median / 1e9, fraction_of_peak=0.0,
        ))
    # The peak is measured before and after the clients; the larger is the machine's peak.
    peak = max(peak, peak_flops())
    report.peak_gflop_per_second = peak / 1e9
    for row in report.rows:
        row.fraction_of_peak = row.gflop_per_second * 1e9 / peak
    return report


def latency_of_run(run_dir: str | Path, **kwargs: Any) -> LatencyReport:
    """:func:`measure_latency` for the trained client of one run, at its configured input size."""
    from noisyarl.runners.runs import load_run

    run = load_run(run_dir)
    return measure_latency({run.defence.name: run.defence.client},
                           run.config.data.image_size, **kwargs)


def latency_of_methods(methods: Sequence[str], image_size: int, split: int = 3,
                       sigma: float = 1.0, **kwargs: Any) -> LatencyReport:
    """:func:`measure_latency` for untrained clients of ``methods`` (``all``: every defence)."""
    names = list(METHODS) if list(methods) == ["all"] else list(methods)
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        from noisyarl.errors import ConfigError

        raise ConfigError(f"--method: unknown {', '.join(unknown)} (known: all, "
                          f"{', '.join(METHODS)})")
    clients = {name: untrained_defence(name, image_size, split, sigma).client for name in names}
    return measure_latency(clients, image_size, **kwargs)
