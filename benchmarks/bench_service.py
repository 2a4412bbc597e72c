"""Split inference end to end, and a bounded load test of ``noisyarl serve`` on loopback.

1. Exports the run's client to ONNX (noise inside) and verifies it against PyTorch.
2. Starts ``noisyarl serve RUN_DIR`` in a subprocess (bearer token on), waits for /health.
3. One SDK client: ``predict(images)`` (ONNX Runtime obfuscation + HTTP), checked against the
   in-process utility head on the same z.
4. Load test: ``--clients`` threads share ``--requests`` requests (each a batch of ``--batch``
   precomputed z, so the test measures the service, not the client), stopping early at
   ``--time-limit`` seconds. Reports requests/s, p50/p99 latency and errors.

Usage: python benchmarks/bench_service.py RUN_DIR [--clients 8 --requests 2000 --batch 1]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from noisyarl.client import LocalObfuscator, SplitInferenceClient
from noisyarl.deploy.export import export_client
from noisyarl.deploy.wire import MEDIA_TYPE, encode_z
from noisyarl.runners.runs import load_run
from noisyarl.runtime.device import cpu_model

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(run_dir: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "NOISYARL_TOKEN": TOKEN}
    server = subprocess.Popen(
        [sys.executable, "-m", "noisyarl.cli", "serve", run_dir, "--port", str(port),
         "--max-batch", "64"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"server did not start: {server.stderr.read().decode()[-2000:]}")


def end_to_end_check(url: str, onnx_path: Path, run_dir: str, image_size: int) -> dict:
    """One SDK prediction from images, and its agreement with the in-process head."""
    run = load_run(run_dir)
    images = torch.rand(16, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))
    with SplitInferenceClient(url, LocalObfuscator(onnx_path), token=TOKEN) as client:
        started = time.perf_counter()
        client.predict(images)
        seconds = time.perf_counter() - started
        z = client.obfuscator(images)
        served = client.predict_z(z)
    with torch.no_grad():
        local = run.defence.utility_head(torch.from_numpy(z)).numpy()
    return {"sdk_predict_16_images_ms": 1e3 * seconds,
            "max_abs_output_difference": float(np.abs(served.outputs - local).max()),
            "same_predictions": served.predictions == (local.reshape(-1) > 0).astype(int).tolist()}


def load_test(url: str, body: bytes, clients: int, requests: int, time_limit: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + time_limit

    def worker() -> None:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": MEDIA_TYPE}
        with httpx.Client(base_url=url, headers=headers, timeout=30) as http:
            while time.monotonic() < deadline:
                with lock:
                    if next(counter, None) is None:
                        return
                started = time.perf_counter()
                try:
                    response = http.post("/v1/predict", content=body)
                    ok = response.status_code == 200
                except httpx.HTTPError as error:
                    ok, response = False, error
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
                    if not ok:
                        errors.append(str(getattr(response, "status_code", response)))

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    ordered = sorted(latencies)
    return {"clients": clients, "requests_sent": len(latencies), "wall_seconds": wall,
            "requests_per_second": len(latencies) / wall,
            "p50_ms": 1e3 * statistics.median(ordered),
            "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
            "errors": len(errors), "error_samples": errors[:5]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=1, help="samples of z per request")
    parser.add_argument("--time-limit", type=float, default=60.0)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    run = load_run(args.run_dir)
    size = run.config.data.image_size
    onnx_path = Path(tempfile.mkdtemp()) / "client.onnx"
    exported = export_client(args.run_dir, "onnx", onnx_path)
    z = LocalObfuscator(onnx_path)(np.random.rand(args.batch, 3, size, size))
    body = encode_z(torch.from_numpy(z))

    port = free_port()
    server = start_server(args.run_dir, port)
    url = f"http://127.0.0.1:{port}"
    try:
        results = {
            "machine": f"{cpu_model()}, {os.cpu_count()} logical CPUs",
            "torch": torch.__version__, "run": run.config.run_name(), "image_size": size,
            "export_check": vars(exported.check), "end_to_end": end_to_end_check(
                url, onnx_path, args.run_dir, size),
            "batch": args.batch, "body_bytes": len(body),
            "load": load_test(url, body, args.clients, args.requests, args.time_limit),
            "server_alive_after": httpx.get(f"{url}/health").status_code == 200,
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
