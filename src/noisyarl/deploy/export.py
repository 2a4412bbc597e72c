"""Export a trained client (obfuscator + noise module) to ONNX or TorchScript, and verify it.

The exported graph maps images ``[B, 3, S, S]`` (float32 in [0, 1], B dynamic) to the
transmitted ``z``. The noise module stays inside the graph (ONNX ``RandomNormalLike``, a fresh
draw per call), so a device cannot skip it by accident. ``noise=False`` exports the noise-free
client for verification only; the file's metadata says so (``"noise": false``) and
:class:`noisyarl.client.LocalObfuscator` refuses such a file unless asked explicitly.

Works for any defence: the client is ``defence.client`` as the training loop built it, and the
noise is switched off by disabling every noise source inside it
(:class:`~noisyarl.models.noise.NoiseSource`: a :class:`~noisyarl.models.GaussianNoise`, or learned
noise such as Shredder's).

Metadata (a JSON object) is stored in the file (ONNX ``metadata_props["noisyarl"]``, TorchScript
extra file ``noisyarl.json``) and beside it as ``<file>.json`` together with the verification.
It says what the file does (``client_kind`` and ``noise_description``: noise inside, no noise
because σ = 0 or the defence adds none, an identity client that sends the image itself, or a
verification-only export) and how images must be prepared for it (``preprocessing``: the run's
size, crop, range and layout; :func:`noisyarl.client.prepare_images` applies it).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

import noisyarl
from noisyarl.errors import ConfigError
from noisyarl.models import GaussianNoise
from noisyarl.models.noise import NoiseSource
from noisyarl.runners.runs import LoadedRun, load_run
from noisyarl.utils.io import atomic_write_bytes, write_json

ExportFormat = Literal["onnx", "torchscript"]
SUFFIXES: dict[str, str] = {"onnx": ".onnx", "torchscript": ".pt"}
METADATA_KEY = "noisyarl"
INPUT_NAME, OUTPUT_NAME = "images", "z"


@dataclass
class ExportCheck:
    """Exported model against PyTorch on the same random images.

    max_abs_error: max |exported z - PyTorch z| (noise-free export; None for a noisy one).
    scale: max |PyTorch z| (the tolerance is ``1e-4 * max(1, scale)``: float32 rounding grows
    with the magnitude of z, and noisy ARL's features can be large, docs/method.md §2).
    residual_mean / residual_std: of (exported z - noise-free PyTorch z); ≈ 0 and ≈ σ when the
    noise is inside. expected_sigma: σ of the client's noise module (0 when it has none).
    batch_sizes: batch sizes run through the export (the batch axis is dynamic).
    """

    passed: bool
    noise: bool
    max_abs_error: float | None
    scale: float
    residual_mean: float
    residual_std: float
    expected_sigma: float
    batch_sizes: list[int]
    elements: int


@dataclass
class ExportedClientFile:
    """An exported client: the file, its metadata, and (after :func:`verify_export`) the check."""

    path: Path
    metadata: dict[str, Any]
    check: ExportCheck | None = None


#: How each dataset turns a stored image into a model input (see ``noisyarl.data``): CelebA
#: centre-crops to a square first; the others resize the whole image to a square.
DATASET_CROPS: dict[str, str] = {"celeba": "center", "fairface": "none", "cifar10": "none",
                                 "folder": "none"}
CROP_WORDS = {"center": "centre-crop to a square of side min(width, height), then resize",
              "none": "resize the whole image (no crop)"}


def run_preprocessing(run: LoadedRun) -> dict[str, Any]:
    """How the run's images were prepared, so a device can prepare its own the same way."""
    size = run.config.data.image_size
    crop = DATASET_CROPS.get(run.config.data.dataset, "none")
    return {"dataset": run.config.data.dataset, "image_size": size, "crop": crop,
            "channels": "RGB", "layout": "NCHW", "dtype": "float32", "range": [0.0, 1.0],
            "description": f"RGB; {CROP_WORDS[crop]} to {size} x {size} px (bilinear); "
                           "pixels / 255 as float32 in [0, 1]; shape [B, 3, "
                           f"{size}, {size}]"}


def noise_modules(client: nn.Module) -> list[GaussianNoise]:
    """The noise modules inside ``client`` that add noise (enabled and σ > 0)."""
    return [module for module in client.modules()
            if isinstance(module, GaussianNoise) and module.active]


def noise_sources(client: nn.Module) -> list[NoiseSource]:
    """Every module inside ``client`` that adds random noise now (a :class:`GaussianNoise` with
    σ > 0, or learned noise such as Shredder's), whatever its distribution."""
    return [module for module in client.modules()
            if isinstance(module, NoiseSource) and module.noise_std > 0]


def client_for_export(client: nn.Module, noise: bool = True) -> nn.Module:
    """A CPU float32 eval-mode copy of ``client`` (NCHW weights); noise off unless ``noise``."""
    exported = copy.deepcopy(client).cpu().float().eval()
    exported = exported.to(memory_format=torch.contiguous_format)
    for parameter in exported.parameters():
        parameter.requires_grad_(False)
    if not noise:
        for module in exported.modules():
            if isinstance(module, NoiseSource):
                module.enabled = False
    return exported


def client_kind(run: LoadedRun, noise: bool) -> tuple[str, str]:
    """(kind, description) of what an export of ``run``'s client does with an image.

    kind: ``identity`` (the defence does not obfuscate: the image itself is sent),
    ``verification_only`` (exported with the noise left out), ``noise`` (noise inside) or
    ``no_noise`` (σ = 0, the run's noise switched off, or a defence without noise).
    """
    defence = run.defence
    sigmas = [module.sigma for module in noise_modules(defence.client)]
    if not defence.obfuscates:
        return "identity", (f"identity client: sends the image itself ({defence.name} does "
                            "not obfuscate)")
    if not noise:
        left_out = f" (σ = {_sigma_text(sigmas)} left out)" if sigmas else ""
        return "verification_only", f"noise OFF: verification only{left_out}"
    if sigmas:
        return "noise", f"noise inside (σ = {_sigma_text(sigmas)})"
    learned = [module.noise_std for module in noise_sources(defence.client)]
    if learned:
        return "noise", f"learned noise inside (overall std {_sigma_text(learned)})"
    return "no_noise", _why_no_noise(defence.client, defence.name)


def _why_no_noise(client: nn.Module, method: str) -> str:
    modules = [module for module in client.modules() if isinstance(module, GaussianNoise)]
    if not modules:
        return f"no noise: {method} adds none"
    switched_off = [module.sigma for module in modules if module.sigma > 0]
    if switched_off:
        return f"no noise: the run's noise module is off (σ = {_sigma_text(switched_off)})"
    return "no noise: σ = 0" + (" (plain ARL)" if method == "noisy_arl" else "")


def _sigma_text(sigmas: list[float]) -> str:
    return ", ".join(f"{sigma:g}" for sigma in sigmas)


def client_metadata(run: LoadedRun, noise: bool, fmt: str) -> dict[str, Any]:
    """What the exported file says about itself (JSON-ready).

    ``noise`` is true only when noise is really inside the graph; ``verification_only`` marks
    an export made with the noise left out (``--no-noise``).
    """
    client = run.defence.client
    sigmas = [module.sigma for module in noise_modules(client)]
    kind, description = client_kind(run, noise)
    with torch.no_grad():
        z = client_for_export(client, noise=False)(torch.zeros(1, *run.image_shape))
    return {
        "format": fmt,
        "precision": "float32",
        "noise": noise and bool(noise_sources(client)),
        "verification_only": not noise,
        "client_kind": kind,
        "noise_description": description,
        "noise_sigma": sigmas[0] if len(sigmas) == 1 else sigmas if sigmas else 0.0,
        "method": run.defence.name,
        "split": run.config.method.split,
        "sigma": run.config.method.sigma,
        "run": run.config.run_name(),
        "utility_task": run.utility.label,
        "private_task": run.private.label,
        "input": {"name": INPUT_NAME, "shape": ["B", *run.image_shape], "dtype": "float32",
                  "range": [0.0, 1.0]},
        "image_size": run.config.data.image_size,
        "preprocessing": run_preprocessing(run),
        "output": {"name": OUTPUT_NAME, "shape": ["B", *z.shape[1:]], "dtype": "float32"},
        "noisyarl": noisyarl.__version__,
        "torch": torch.__version__,
    }


def onnx_bytes(client: nn.Module, image_shape: tuple[int, ...],
               metadata: dict[str, Any] | None = None) -> bytes:
    """Serialised ONNX model of ``client`` with a dynamic batch axis (torch's dynamo exporter)."""
    example = torch.rand(2, *image_shape)
    batch = torch.export.Dim("batch", min=1, max=65536)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            client, (example,), dynamo=True, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_shapes=({0: batch},), verbose=False,
        )
    model = program.model_proto
    if metadata is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    return model.SerializeToString()


def torchscript_bytes(client: nn.Module, image_shape: tuple[int, ...],
                      metadata: dict[str, Any]) -> bytes:
    """Serialised TorchScript (traced; ``randn_like`` is traced as an op, so the noise stays)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated in favour of torch.export
        traced = torch.jit.trace(client, torch.rand(2, *image_shape), check_trace=False)
        buffer = io.BytesIO()
        torch.jit.save(traced, buffer, _extra_files={f"{METADATA_KEY}.json":
                                                     json.dumps(metadata).encode()})
    return buffer.getvalue()


def export_client(
    run_dir: str | Path,
    fmt: ExportFormat = "onnx",
    out: str | Path | None = None,
    *,
    noise: bool = True,
    verify: bool = True,
) -> ExportedClientFile:
    """Export the client of ``run_dir``; by default to ``RUN_DIR/export/client[-nonoise].<ext>``.

    With ``verify`` the file is reopened and compared with PyTorch (:func:`verify_export`); the
    metadata and the check are also written to ``<file>.json``.
    """
    if fmt not in SUFFIXES:
        raise ConfigError(f"--format: {fmt!r} is not one of {', '.join(SUFFIXES)}")
    run = load_run(run_dir)
    path = Path(out) if out is not None else (
        Path(run_dir) / "export" / f"client{'' if noise else '-nonoise'}{SUFFIXES[fmt]}")
    metadata = client_metadata(run, noise, fmt)
    client = client_for_export(run.defence.client, noise)
    serialise = onnx_bytes if fmt == "onnx" else torchscript_bytes
    atomic_write_bytes(path, serialise(client, run.image_shape, metadata))
    exported = ExportedClientFile(path, metadata)
    if verify:
        exported.check = verify_export(path, run.defence.client, run.image_shape)
    write_json(path.with_name(path.name + ".json"), {
        "metadata": metadata, "check": asdict(exported.check) if exported.check else None})
    return exported


class ExportedClient:
    """An exported client file opened for inference (ONNX Runtime or TorchScript).

    ``__call__(images)`` takes images [B, 3, S, S] in [0, 1] (numpy or torch, any float dtype)
    and returns z as a float32 numpy array; every call draws fresh noise when it is inside.
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise ConfigError(f"exported client not found: {self.path}")
        if self.path.suffix == ".onnx":
            self.metadata, self._run = _open_onnx(self.path, threads)
        elif self.path.suffix == ".pt":
            self.metadata, self._run = _open_torchscript(self.path)
        else:
            raise ConfigError(f"{self.path}: expected a .onnx or .pt file from `noisyarl export`")

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["input"]["shape"][1:])

    @property
    def z_shape(self) -> tuple[int, ...]:
        return tuple(self.metadata["output"]["shape"][1:])

    def __call__(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        images = np.ascontiguousarray(images, dtype=np.float32)
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"images must have shape [B, {', '.join(map(str, self.image_shape))}]"
                             f", got {list(images.shape)}")
        return self._run(images)


def _open_onnx(path: Path, threads: int | None) -> tuple[dict[str, Any], Callable]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(str(path), options,
                                           providers=["CPUExecutionProvider"])
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ConfigError(f"{path}: no noisyarl metadata; export it with `noisyarl export`")
    return json.loads(props[METADATA_KEY]), lambda x: session.run(None, {INPUT_NAME: x})[0]


def _open_torchscript(path: Path) -> tuple[dict[str, Any], Callable]:
    extra = {f"{METADATA_KEY}.json": ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    if not extra[f"{METADATA_KEY}.json"]:
        raise ConfigError(f"{path}: no noisyarl metadata; export it with `noisyarl export`")

    def run(images: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(images)).float().numpy()

    return json.loads(extra[f"{METADATA_KEY}.json"]), run


def verify_export(path: str | Path, client: nn.Module, image_shape: tuple[int, ...],
                  batch_size: int = 8, seed: int = 0) -> ExportCheck:
    """Run the exported file and ``client`` (PyTorch, noise off) on the same random images.

    A noise-free export must match within ``1e-4 * max(1, max|z|)``. A noisy export's residual
    must have |mean| <= 0.03·σ and a standard deviation within 3% of σ, the ``noise_std`` of the
    client's one noise source (σ of a :class:`GaussianNoise`; for learned per-channel noise the
    root-mean-square of its scales).
    """
    exported = ExportedClient(path)
    images = torch.rand(batch_size, *image_shape, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        clean = client_for_export(client, noise=False)(images).float().numpy()
    single = exported(images[:1].numpy())  # the batch axis is dynamic: 1 and batch_size
    z = exported(images.numpy())
    if single.shape[1:] != z.shape[1:] or z.shape != clean.shape:
        raise ValueError(f"exported z shape {z.shape} differs from PyTorch's {clean.shape}")
    residual = (z - clean).astype(np.float64)
    scale = float(np.abs(clean).max())
    stds = [module.noise_std for module in noise_sources(client)]
    expected = stds[0] if len(stds) == 1 else 0.0
    noise = bool(exported.metadata["noise"]) and expected > 0
    mean, std = float(residual.mean()), float(residual.std())
    if noise:
        max_error = None
        passed = abs(mean) <= 0.03 * expected and abs(std / expected - 1) <= 0.03
    else:
        max_error = float(np.abs(residual).max())
        passed = max_error <= 1e-4 * max(1.0, scale)
    return ExportCheck(passed, noise, max_error, scale, mean, std, expected,
                       [1, batch_size], int(residual.size))
