"""Fixtures of the deploy tests: a loopback server, and run directories made without training.

An untrained "run" is what ``noisyarl run`` leaves for export and serving: ``config.yaml``,
``tasks.json`` and ``checkpoints/best.pt``. The weights are the untrained ones, which is all that
export metadata, preprocessing records and request validation depend on.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest


class LoopbackServer:
    """uvicorn serving ``app`` on a free loopback port in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def loopback_server():
    """The :class:`LoopbackServer` class: ``with loopback_server(app) as server: server.url``."""
    return LoopbackServer


def write_untrained_run(run_dir: Path, dataset: str, root: Path, method: str, sigma: float,
                        labels: tuple[str, str], size: int = 40) -> Path:
    """A run directory of ``method`` (σ = ``sigma``) on ``dataset`` with fresh weights."""
    from noisyarl.builders import defence_from_config, resolve_tasks
    from noisyarl.config import config_from_dict, save_config
    from noisyarl.data.registry import available_labels
    from noisyarl.runners.runs import save_tasks
    from noisyarl.training.checkpoint import save_checkpoint

    config = config_from_dict({
        "name": f"untrained-{method}",
        "data": {"dataset": dataset, "root": str(root), "image_size": size},
        "tasks": {"utility": {"label": labels[0]}, "private": {"label": labels[1]}},
        "method": {"name": method, "split": 2, "sigma": sigma},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
    })
    utility, private = resolve_tasks(config, available_labels(dataset, root))
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / "config.yaml")
    save_tasks(run_dir, utility, private)
    defence = defence_from_config(config, utility, private)
    save_checkpoint(run_dir / "checkpoints" / "best.pt", {"model": defence.state_dict()})
    return run_dir


@pytest.fixture(scope="session")
def untrained_celeba_run(tiny_celeba_root, tmp_path_factory):
    """``make(method, sigma)``: an untrained CelebA run (Smiling / Male, 40 px), cached."""
    made: dict[tuple[str, float], Path] = {}

    def make(method: str, sigma: float = 0.0) -> Path:
        if (method, sigma) not in made:
            folder = tmp_path_factory.mktemp(f"untrained-{method}") / "run"
            made[method, sigma] = write_untrained_run(folder, "celeba", tiny_celeba_root,
                                                      method, sigma, ("Smiling", "Male"))
        return made[method, sigma]

    return make


@pytest.fixture(scope="session")
def tiny_onnx_export(tiny_run_dir, tmp_path_factory) -> Path:
    """The default ONNX export (noise inside) of ``tiny_run_dir``; treat as read-only."""
    from noisyarl.deploy.export import export_client

    path = tmp_path_factory.mktemp("export") / "client.onnx"
    export_client(tiny_run_dir, "onnx", path)
    return path
