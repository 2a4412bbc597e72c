"""Client latency on this machine: PyTorch eager, channels_last, ONNX Runtime fp32 and int8.

For each backend and batch size the client (noise inside, as deployed) runs ``warmup`` times,
then ``runs`` timed times; we report the median and 90th percentile in milliseconds, images/s,
and *nominal* FLOP/s: the FLOPs of a direct convolution (convolutions and matrix products at 2
per multiply-add, :mod:`noisyarl.evaluation.cost`) over the median time, also as a fraction of
the fp32 GEMM peak, the best throughput of a large float32 matrix product (:func:`peak_flops`).
That fraction can exceed 100 % (:data:`PEAK_FOOTNOTE`): it compares rows, it is not utilisation.

``onnxruntime_int8`` (not in the default :data:`BACKENDS`) times an int8 client: a given int8
file (``noisyarl export --int8``), or else one quantised in memory on random calibration images
(:func:`noisyarl.deploy.quantize.int8_bytes_for_timing`; speed does not depend on the ranges).
"""

from __future__ import annotations

import statistics
import textwrap
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
from noisyarl.runtime.device import cpu_model
from noisyarl.utils.progress import progress as progress_bar

BACKENDS = ("eager", "channels_last", "onnxruntime")
INT8_BACKEND = "onnxruntime_int8"
ALL_BACKENDS = (*BACKENDS, INT8_BACKEND)
#: Where ``noisyarl export --int8`` puts a run's int8 client (timed by ``latency RUN_DIR``).
RUN_INT8_FILE = Path("export") / "client.int8.onnx"
PEAK_COLUMN = "nominal ÷ fp32 GEMM peak ¹"
PEAK_FOOTNOTE = (
    "¹ Nominal: the FLOPs a direct convolution would need (2 per multiply-add, "
    "noisyarl.evaluation.cost) over the median time, against the fp32 GEMM peak (the best "
    "2048 × 2048 float32 matrix product measured on this machine). Figures above 100 % are "
    "expected, not errors: the runtimes compute convolutions with fewer multiplications than "
    "that count (Winograd-type kernels for 3 × 3 convolutions, for example), and int8 kernels "
    "do more operations per cycle than float32 ones. Compare rows with each other; this is "
    "not hardware utilisation.")


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
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The rows as a Markdown table, then the footnote on the peak column and the notes."""
        lines = ["| client | backend | batch | median ms | p90 ms | img/s | nominal GFLOP/s ¹ | "
                 f"{PEAK_COLUMN} |", "|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r.client} | {r.backend} | {r.batch_size} | {r.median_ms:.2f} | "
                  f"{r.p90_ms:.2f} | {r.images_per_second:.1f} | {r.gflop_per_second:.1f} | "
                  f"{100 * r.fraction_of_peak:.1f}% |" for r in self.rows]
        notes = [textwrap.fill(note, 100) for note in (PEAK_FOOTNOTE, *self.notes)]
        return "\n".join([*lines, "", *notes])


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


def onnxruntime_call(model: bytes, images: torch.Tensor) -> Callable[[], Any]:
    """A zero-argument function that runs the ONNX ``model`` on ``images`` (torch's threads)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.log_severity_level = 3  # errors only (an identity client has unused initialisers)
    session = onnxruntime.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    array = np.ascontiguousarray(images.numpy())
    return lambda: session.run(None, {"images": array})


def backend_call(client: nn.Module, backend: str, images: torch.Tensor,
                 int8_model: bytes | None = None) -> Callable[[], Any]:
    """A zero-argument function that runs ``client`` on ``images`` with ``backend``.

    int8_model: the serialised int8 ONNX client that ``onnxruntime_int8`` runs (required there).
    """
    if backend == "onnxruntime":
        return onnxruntime_call(onnx_bytes(client, tuple(images.shape[1:])), images)
    if backend == INT8_BACKEND:
        if int8_model is None:
            raise ValueError(f"{INT8_BACKEND} needs the int8 model")
        return onnxruntime_call(int8_model, images)
    if backend == "channels_last":
        client = client_for_export(client).to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    elif backend != "eager":
        raise ValueError(f"unknown backend {backend!r} (known: {', '.join(ALL_BACKENDS)})")

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
    int8_models: dict[str, bytes] | None = None,
) -> LatencyReport:
    """Latency of every client in ``clients`` (name -> module) for each backend and batch size.

    int8_models: name -> serialised int8 ONNX client for ``onnxruntime_int8``; a client without
    one is quantised in memory on random calibration images (noted in the report).
    """
    peak = peak_flops()
    report = LatencyReport(0.0, image_size, runs, warmup, torch.get_num_threads(),
                           machine={"cpu": cpu_model(),
                                    "torch": torch.__version__})
    shape = (3, image_size, image_size)
    int8_models = dict(int8_models or {})
    if INT8_BACKEND in backends:
        report.notes += _quantize_missing(clients, shape, int8_models)
    jobs = [(name, backend, batch) for name in clients for backend in backends
            for batch in batch_sizes]
    for name, backend, batch in progress_bar(jobs, desc="latency", enabled=progress, leave=False):
        client = client_for_export(clients[name])
        flops = measure_client_cost(client, shape).flops * batch
        images = torch.rand(batch, *shape, generator=torch.Generator().manual_seed(0))
        call = backend_call(client, backend, images, int8_models.get(name))
        times = time_calls(call, runs, warmup)
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


def _quantize_missing(clients: dict[str, nn.Module], shape: tuple[int, ...],
                      int8_models: dict[str, bytes]) -> list[str]:
    """Add an in-memory int8 model for each client without one; returns the notes to print."""
    from noisyarl.deploy.quantize import int8_bytes_for_timing

    missing = [name for name in clients if name not in int8_models]
    for name in missing:
        client = client_for_export(clients[name])
        int8_models[name] = int8_bytes_for_timing(onnx_bytes(client, shape), shape)
    if not missing:
        return []
    return [f"{INT8_BACKEND} of {', '.join(missing)}: quantised in memory (static QDQ, int8 "
            "weights per channel, uint8 activations, noise in float32) on 8 random calibration "
            "images; the speed does not depend on the calibration, the accuracy does (ship "
            "`noisyarl export --int8`)."]


def latency_of_run(run_dir: str | Path, int8: bool = False, **kwargs: Any) -> LatencyReport:
    """:func:`measure_latency` for the trained client of one run, at its configured input size.

    The int8 backend is added when ``RUN_DIR/export/client.int8.onnx`` exists (that file is
    timed) or with ``int8`` (then quantised in memory when the file is missing).
    """
    from noisyarl.runners.runs import load_run

    run = load_run(run_dir)
    name, file = run.defence.name, Path(run_dir) / RUN_INT8_FILE
    int8_models = {name: file.read_bytes()} if file.is_file() else {}
    if int8 or int8_models:
        kwargs["backends"] = (*kwargs.get("backends", BACKENDS), INT8_BACKEND)
    report = measure_latency({name: run.defence.client}, run.config.data.image_size,
                             int8_models=int8_models, **kwargs)
    if int8_models:
        report.notes.append(f"{INT8_BACKEND}: {file} (`noisyarl export --int8`).")
    return report


def latency_of_methods(methods: Sequence[str], image_size: int, split: int = 3,
                       sigma: float = 1.0, int8: bool = False, **kwargs: Any) -> LatencyReport:
    """:func:`measure_latency` for untrained clients of ``methods`` (``all``: every defence);
    ``int8`` adds the int8 backend (quantised in memory)."""
    names = list(METHODS) if list(methods) == ["all"] else list(methods)
    unknown = [name for name in names if name not in METHODS]
    if unknown:
        from noisyarl.errors import ConfigError

        raise ConfigError(f"--method: unknown {', '.join(unknown)} (known: all, "
                          f"{', '.join(METHODS)})")
    clients = {name: untrained_defence(name, image_size, split, sigma).client for name in names}
    if int8:
        kwargs["backends"] = (*kwargs.get("backends", BACKENDS), INT8_BACKEND)
    return measure_latency(clients, image_size, **kwargs)
