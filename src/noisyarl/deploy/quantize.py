"""An int8 client: the exported ONNX client quantised with ONNX Runtime, the noise kept float32.

``noisyarl export RUN_DIR --int8`` writes ``client.int8.onnx`` beside ``client.onnx`` (from that
fp32 file; same input, output and metadata, plus ``precision`` and ``quantization``). Two modes:

* ``static`` (the default, preferred): QDQ format; weights int8 per output channel (symmetric),
  activations uint8 per tensor (asymmetric, the layout ONNX Runtime's x86 kernels prefer); the
  activation ranges are calibrated (min/max) on the first ``calibration_images`` images of the
  run's *training* split, prepared as the training loader prepares them, without augmentation.
  It needs the run's dataset on disk.
* ``dynamic`` (``--int8-mode dynamic``, for when the training images are not at hand): weights
  int8 per output channel; activations quantised on every call from their own range
  (``ConvInteger``). Nothing to calibrate, but usually slower than static on CPU, and no
  automatic fallback: static never silently becomes dynamic.

The noise module (its ``RandomNormalLike`` draw, the scaling by σ, the addition; with
``normalize`` the per-sample rescaling too) and every node after it are excluded from
quantisation (:func:`float_nodes`): they run in float32, so the noise added to z is the fp32
client's. The features h leave the int8 part dequantised, just before the noise module.

After writing, :func:`verify_int8` compares the file with the fp32 export on held-out images
(the run's validation split), both with their noise draws replaced by zeros
(:func:`without_noise`): RMS(z_int8 − z_fp32) must be at most ``INT8_TOLERANCE`` (5 %) of
RMS(z_fp32); a noisy client's noise must still have mean ≈ 0 and standard deviation ≈ σ.
"""

from __future__ import annotations

import contextlib
import json
import logging
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnx

from noisyarl.data.augment import to_unit_float
from noisyarl.data.base import DatasetError
from noisyarl.data.registry import load_splits
from noisyarl.deploy.export import INPUT_NAME, METADATA_KEY
from noisyarl.errors import ConfigError
from noisyarl.models import GaussianNoise
from noisyarl.runners.runs import LoadedRun, load_run
from noisyarl.utils.io import atomic_write_bytes, write_json

QuantMode = Literal["static", "dynamic"]
QUANT_MODES: tuple[str, ...] = ("static", "dynamic")
#: Default number of training images the static mode calibrates on.
CALIBRATION_IMAGES = 128
#: Default number of validation images the check runs on.
CHECK_IMAGES = 32
#: Largest RMS(z_int8 − z_fp32) / RMS(z_fp32) the check accepts (noise draws zeroed).
INT8_TOLERANCE = 0.05
#: ``pkg.torch.onnx.class_hierarchy`` of a node of the noise module (torch's ONNX exporter).
NOISE_CLASS = f"{GaussianNoise.__module__}.{GaussianNoise.__qualname__}"
NOISE_OPS = ("RandomNormalLike", "RandomNormal")


@dataclass
class Int8Check:
    """The int8 file against the fp32 export on the same held-out images, noise draws zeroed.

    rms_error: RMS of z_int8 − z_fp32; scale: RMS of z_fp32; relative_error = rms_error / scale
    (passes when <= tolerance). max_abs_error and max_abs: max |z_int8 − z_fp32| and max |z_fp32|
    (reported only). noise, residual_mean, residual_std, expected_sigma: for a noisy client,
    the shipped int8 file minus its own noise-free output (mean ≈ 0, std within 3 % of σ).
    images: how many images, image_source: which ones.
    """

    passed: bool
    relative_error: float
    tolerance: float
    rms_error: float
    scale: float
    max_abs_error: float
    max_abs: float
    noise: bool
    residual_mean: float
    residual_std: float
    expected_sigma: float
    images: int
    image_source: str


@dataclass
class Int8ClientFile:
    """The written int8 file, its metadata, its check and the fp32 file it was made from."""

    path: Path
    metadata: dict[str, Any]
    check: Int8Check | None
    source: Path

    @property
    def size_ratio(self) -> float:
        """Size of the int8 file over the fp32 file's."""
        return self.path.stat().st_size / self.source.stat().st_size


def int8_path(fp32_path: str | Path) -> Path:
    """Where the int8 version of an fp32 ONNX file goes: ``client.onnx`` -> ``client.int8.onnx``."""
    path = Path(fp32_path)
    return path.with_name(f"{path.stem}.int8{path.suffix}")


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes that must stay float32: the noise module's and every node after them.

    A node belongs to the noise module when the exporter recorded a :class:`GaussianNoise` in its
    ``pkg.torch.onnx.class_hierarchy``, or when it draws random numbers (``RandomNormal*``).
    """
    seeds = {node.name for node in model.graph.node
             if node.op_type in NOISE_OPS or any(
                 entry.key == "pkg.torch.onnx.class_hierarchy" and NOISE_CLASS in entry.value
                 for entry in node.metadata_props)}
    kept, tainted = [], set()
    for node in model.graph.node:  # ONNX nodes are topologically sorted
        if node.name in seeds or tainted.intersection(node.input):
            kept.append(node.name)
            tainted.update(node.output)
    return kept


def without_noise(model: onnx.ModelProto) -> bytes:
    """``model`` serialised with each ``RandomNormalLike`` draw replaced by zeros (``x − x``).

    For checks only: the same graph, weights and quantisation, with the noise term zero.
    """
    copy = onnx.ModelProto.FromString(model.SerializeToString())
    for node in copy.graph.node:
        if node.op_type == "RandomNormal":
            raise ValueError(f"{node.name}: RandomNormal (fixed shape) cannot be zeroed here")
        if node.op_type == "RandomNormalLike":
            node.op_type = "Sub"
            node.input.append(node.input[0])
            del node.attribute[:]
    return copy.SerializeToString()


def split_images(run: LoadedRun, split: str, count: int) -> np.ndarray:
    """The first ``count`` images of the run's ``split``: float32 [N, 3, S, S] in [0, 1].

    Prepared as the training loader prepares them (the run's size and crop; no augmentation).
    The train split is capped at the run's ``data.max_train``: only images the run trained on.
    Raises :class:`ConfigError` when the dataset cannot be read.
    """
    data = run.config.data
    if split == "train" and data.max_train is not None:
        count = min(count, data.max_train)
    try:
        loaded = load_splits(data.dataset, data.root, data.image_size, splits=(split,),
                             max_samples={split: count}, seed=data.split_seed)[split]
    except (DatasetError, ValueError) as error:
        raise ConfigError(f"cannot read the {split} images of {run.run_dir} ({data.dataset} at "
                          f"{data.root}): {error}") from error
    return to_unit_float(loaded.images).numpy()


class ImageBatches:
    """A ``CalibrationDataReader`` (ONNX Runtime's duck type): ``images`` [N, 3, S, S] float32
    in batches of ``batch_size``."""

    def __init__(self, images: np.ndarray, batch_size: int = 32) -> None:
        starts = range(0, len(images), batch_size)
        self._batches = iter([np.ascontiguousarray(images[i:i + batch_size]) for i in starts])

    def get_next(self) -> dict[str, np.ndarray] | None:
        """The next batch as ``{"images": array}``; None when all were given."""
        batch = next(self._batches, None)
        return None if batch is None else {INPUT_NAME: batch}


@contextlib.contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Hide the quantiser's advice to pre-process (the exporter already folds batch norms)."""
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def quantize_onnx(fp32: Path, mode: QuantMode, calibration: np.ndarray | None,
                  keep_float: list[str]) -> onnx.ModelProto:
    """The int8 model of the ONNX file ``fp32`` (see the module docstring for the settings).

    calibration: images [N, 3, S, S] for ``static`` (ignored by ``dynamic``).
    keep_float: node names excluded from quantisation.
    """
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    with tempfile.TemporaryDirectory() as folder, _quiet_quantizer():
        target = Path(folder) / "int8.onnx"
        if mode == "static":
            if calibration is None or len(calibration) == 0:
                raise ValueError("static quantisation needs calibration images")
            quantize_static(str(fp32), str(target), ImageBatches(calibration),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                            nodes_to_exclude=keep_float, calibrate_method=CalibrationMethod.MinMax)
        elif mode == "dynamic":
            quantize_dynamic(str(fp32), str(target), per_channel=True,
                             weight_type=QuantType.QInt8, nodes_to_exclude=keep_float)
        else:
            raise ConfigError(f"--int8-mode: {mode!r} is not one of {', '.join(QUANT_MODES)}")
        return onnx.load(str(target))


def quantization_record(mode: QuantMode, calibration: int, split: str,
                        keep_float: list[str], source: Path) -> dict[str, Any]:
    """What the metadata says about the quantisation (JSON-ready)."""
    import onnxruntime

    record: dict[str, Any] = {
        "tool": f"onnxruntime.quantization {onnxruntime.__version__}", "mode": mode,
        "weights": "int8, per output channel, symmetric",
        "float32_nodes": keep_float,
        "float32": "the noise module and every node after it", "source": source.name,
    }
    if mode == "static":
        record |= {"format": "QDQ", "activations": "uint8, per tensor, asymmetric (calibrated)",
                   "calibration": {"method": "MinMax", "split": split, "images": calibration,
                                   "selection": f"the first {calibration} images of the {split} "
                                                "split (file order), no augmentation"}}
    else:
        record |= {"format": "IntegerOps", "calibration": None,
                   "activations": "uint8, range measured on every call (dynamic)"}
    return record


def _set_metadata(model: onnx.ModelProto, metadata: dict[str, Any]) -> None:
    for entry in model.metadata_props:
        if entry.key == METADATA_KEY:
            entry.value = json.dumps(metadata)
            return
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)


def _fp32_metadata(model: onnx.ModelProto, path: Path) -> dict[str, Any]:
    props = {entry.key: entry.value for entry in model.metadata_props}
    if METADATA_KEY not in props:
        raise ConfigError(f"{path}: no noisyarl metadata; export it with `noisyarl export`")
    metadata = json.loads(props[METADATA_KEY])
    if metadata.get("precision", "float32") != "float32" or metadata.get("format") != "onnx":
        raise ConfigError(f"{path}: --int8 quantises a float32 ONNX export")
    return metadata


def export_int8_client(
    run_dir: str | Path,
    fp32: str | Path,
    out: str | Path | None = None,
    *,
    mode: QuantMode = "static",
    calibration_images: int = CALIBRATION_IMAGES,
    check_images: int = CHECK_IMAGES,
    verify: bool = True,
) -> Int8ClientFile:
    """Quantise the fp32 ONNX export ``fp32`` of ``run_dir``'s client to int8.

    Writes ``out`` (default :func:`int8_path` of ``fp32``) and ``<out>.json`` (metadata and
    check). Static mode reads ``calibration_images`` training images of the run; ``verify``
    reads ``check_images`` validation images (random images when a dynamic export cannot read
    the dataset). Raises :class:`ConfigError` when static calibration cannot read the images.
    """
    fp32, run = Path(fp32), load_run(run_dir)
    model = onnx.load(str(fp32))
    metadata = _fp32_metadata(model, fp32)
    if metadata["client_kind"] == "identity":
        raise ConfigError(f"--int8: {run.defence.name}'s client sends the image itself; "
                          "there are no weights to quantise")
    calibration = None
    if mode == "static":
        calibration = _calibration_images(run, calibration_images)
    keep_float = float_nodes(model)
    quantized = quantize_onnx(fp32, mode, calibration, keep_float)
    metadata |= {"precision": "int8", "quantization": quantization_record(
        mode, 0 if calibration is None else len(calibration), "train", keep_float, fp32)}
    _set_metadata(quantized, metadata)
    path = Path(out) if out is not None else int8_path(fp32)
    atomic_write_bytes(path, quantized.SerializeToString())
    check = None
    if verify:
        images, source = _check_images(run, check_images, required=mode == "static")
        check = verify_int8(quantized, model, images, metadata, source)
    write_json(path.with_name(path.name + ".json"),
               {"metadata": metadata, "check": asdict(check) if check else None})
    return Int8ClientFile(path, metadata, check, fp32)


def _calibration_images(run: LoadedRun, count: int) -> np.ndarray:
    try:
        return split_images(run, "train", count)
    except ConfigError as error:
        raise ConfigError(f"--int8: static calibration needs the run's training images: "
                          f"{error}; restore the dataset, or use --int8-mode dynamic "
                          "(no calibration)") from error


def _check_images(run: LoadedRun, count: int, required: bool) -> tuple[np.ndarray, str]:
    """Held-out images for the check: the first ``count`` validation images; uniform random
    images (seed 0) when the dataset cannot be read and ``required`` is false."""
    try:
        images = split_images(run, "valid", count)
        return images, f"the first {len(images)} images of the valid split"
    except ConfigError:
        if required:
            raise
    rng = np.random.default_rng(0)
    images = rng.random((count, *run.image_shape), dtype=np.float32)
    return images, f"{count} uniform random images (the dataset could not be read)"


def _session(model: bytes) -> Any:
    import onnxruntime

    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])


def verify_int8(int8: onnx.ModelProto, fp32: onnx.ModelProto, images: np.ndarray,
                metadata: dict[str, Any], image_source: str) -> Int8Check:
    """:class:`Int8Check` of the int8 model against the fp32 one on ``images`` [N, 3, S, S]."""
    feed = {INPUT_NAME: np.ascontiguousarray(images, dtype=np.float32)}
    clean_int8 = _session(without_noise(int8)).run(None, feed)[0].astype(np.float64)
    clean_fp32 = _session(without_noise(fp32)).run(None, feed)[0].astype(np.float64)
    error = clean_int8 - clean_fp32
    rms_error, scale = float(np.sqrt(np.mean(error**2))), float(np.sqrt(np.mean(clean_fp32**2)))
    relative = rms_error / max(scale, 1e-12)
    sigma = metadata["noise_sigma"] if isinstance(metadata["noise_sigma"], float) else 0.0
    noise = bool(metadata["noise"]) and sigma > 0
    residual = _session(int8.SerializeToString()).run(None, feed)[0] - clean_int8
    mean, std = float(residual.mean()), float(residual.std())
    noise_ok = not noise or (abs(mean) <= 0.03 * sigma and abs(std / sigma - 1) <= 0.03)
    return Int8Check(
        passed=relative <= INT8_TOLERANCE and noise_ok, relative_error=relative,
        tolerance=INT8_TOLERANCE, rms_error=rms_error, scale=scale,
        max_abs_error=float(np.abs(error).max()), max_abs=float(np.abs(clean_fp32).max()),
        noise=noise, residual_mean=mean, residual_std=std, expected_sigma=sigma,
        images=len(images), image_source=image_source)


def int8_bytes_for_timing(fp32: bytes, image_shape: tuple[int, ...],
                          calibration_images: int = 8) -> bytes:
    """A static int8 model of the serialised fp32 ONNX client ``fp32``, calibrated on uniform
    random images [``calibration_images``, *image_shape] (seed 0), noise kept float32.

    For timing only (``noisyarl latency --int8`` without an int8 export): the kernels, and so
    the speed, do not depend on the calibrated ranges; the accuracy does, so ship an export.
    """
    images = np.random.default_rng(0).random((calibration_images, *image_shape),
                                             dtype=np.float32)
    model = onnx.ModelProto.FromString(fp32)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fp32.onnx"
        path.write_bytes(fp32)
        return quantize_onnx(path, "static", images, float_nodes(model)).SerializeToString()
