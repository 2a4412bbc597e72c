"""`noisyarl export --int8`: an int8 client that runs in ONNX Runtime, is close to the fp32 one,
is smaller, and keeps the noise inside the graph in float32."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import onnxruntime
import pytest
import torch

from noisyarl.cli import main
from noisyarl.client import LocalObfuscator
from noisyarl.deploy.export import ExportedClient, client_for_export
from noisyarl.deploy.quantize import float_nodes, int8_path, split_images, without_noise
from noisyarl.runners.runs import load_run

QUANTISED_OPS = {"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger",
                 "DynamicQuantizeLinear", "MatMulInteger", "QLinearMatMul"}


@pytest.fixture(scope="module")
def int8_run(tiny_run_dir, tmp_path_factory):
    """A copy of the one-epoch tiny run (σ = 0.5, 40 px, RN18_2) after
    ``export --int8 --calibration-images 64``: RUN/export/client.onnx and client.int8.onnx."""
    run_dir = tmp_path_factory.mktemp("int8") / "run"
    shutil.copytree(tiny_run_dir, run_dir)
    assert main(["export", str(run_dir), "--int8", "--calibration-images", "64"]) == 0
    return run_dir


def _clean_z(path, images: np.ndarray) -> np.ndarray:
    """z of the ONNX file at ``path`` with its noise draws zeroed, float64."""
    session = onnxruntime.InferenceSession(without_noise(onnx.load(str(path))),
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"images": images})[0].astype(np.float64)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2)))


def test_int8_file_is_beside_the_fp32_one_and_smaller(int8_run):
    fp32 = int8_run / "export" / "client.onnx"
    int8 = int8_path(fp32)
    assert int8 == int8_run / "export" / "client.int8.onnx" and int8.is_file()
    assert int8.stat().st_size < 0.35 * fp32.stat().st_size  # int8 weights: about a quarter


def test_noise_free_int8_output_is_close_to_fp32(int8_run):
    """On test images (never calibrated on), noise zeroed in both graphs. Tolerance relative to
    the output's scale: RMS error <= 5 % of RMS(z_fp32), every element within 10 % of max|z|."""
    fp32 = int8_run / "export" / "client.onnx"
    run = load_run(int8_run)
    images = split_images(run, "test", 16)
    with torch.no_grad():
        reference = client_for_export(run.defence.client, noise=False)(torch.from_numpy(images))
    z32, z8 = _clean_z(fp32, images), _clean_z(int8_path(fp32), images)
    # without_noise zeroes the draw and nothing else: the fp32 graph equals PyTorch without noise
    np.testing.assert_allclose(z32, reference.numpy(), atol=1e-4 * max(1, np.abs(z32).max()))
    assert _rms(z8 - z32) <= 0.05 * _rms(z32)
    assert np.abs(z8 - z32).max() <= 0.10 * np.abs(z32).max()
    assert not np.array_equal(z8, z32)  # it really is quantised

    sidecar = json.loads((int8_run / "export" / "client.int8.onnx.json").read_text())
    assert sidecar["check"]["passed"] and sidecar["check"]["relative_error"] <= 0.05
    assert sidecar["check"]["image_source"] == "the first 32 images of the valid split"


def test_noise_node_is_inside_and_float32_and_the_rest_int8(int8_run):
    model = onnx.load(str(int8_run / "export" / "client.int8.onnx"))
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {value.name: value.type.tensor_type.elem_type for value in
             [*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output]}
    types |= {tensor.name: tensor.data_type for tensor in model.graph.initializer}
    nodes = {node.name: node for node in model.graph.node}

    draws = [node for node in model.graph.node if node.op_type == "RandomNormalLike"]
    assert len(draws) == 1
    kept = float_nodes(model)
    assert draws[0].name in kept and len(kept) == 3  # the draw, × σ, + h
    for name in kept:
        node = nodes[name]
        assert node.op_type not in QUANTISED_OPS
        tensors = [tensor for tensor in [*node.input, *node.output] if tensor]
        assert all(types[tensor] == onnx.TensorProto.FLOAT for tensor in tensors), name
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(model.graph.output[0].name in nodes[name].output for name in kept)

    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    int8_weights = [t for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert convs and len(int8_weights) >= len(convs)

    metadata = json.loads({p.key: p.value for p in model.metadata_props}["noisyarl"])
    quantization = metadata["quantization"]
    assert (metadata["precision"], metadata["noise"], metadata["noise_sigma"]) == (
        "int8", True, 0.5)
    assert (quantization["mode"], quantization["format"]) == ("static", "QDQ")
    assert quantization["calibration"]["split"] == "train"
    assert quantization["calibration"]["images"] == 64
    assert quantization["float32_nodes"] == kept and quantization["source"] == "client.onnx"


def test_int8_client_draws_fresh_noise_of_sigma(int8_run):
    path = int8_run / "export" / "client.int8.onnx"
    images = np.random.default_rng(0).random((8, 3, 40, 40), dtype=np.float32)
    exported = ExportedClient(path)
    first, second = exported(images), exported(images)
    assert not np.allclose(first, second)
    residual = np.concatenate([first, second]) - np.concatenate([_clean_z(path, images)] * 2)
    assert abs(residual.mean()) < 0.03 * 0.5 and residual.std() == pytest.approx(0.5, rel=0.03)
    assert LocalObfuscator(path).z_shape == (128, 5, 5)  # the device SDK takes it as it is


def test_static_needs_the_training_images_dynamic_does_not(untrained_celeba_run, tmp_path,
                                                          capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(untrained_celeba_run("noisy_arl", 0.5), run_dir)
    config = run_dir / "config.yaml"
    root = load_run(run_dir).config.data.root
    config.write_text(config.read_text().replace(root, str(tmp_path / "gone")))

    assert main(["export", str(run_dir), "--int8"]) == 2
    error = capsys.readouterr().err
    assert "static calibration needs the run's training images" in error
    assert "--int8-mode dynamic" in error

    assert main(["export", str(run_dir), "--int8", "--int8-mode", "dynamic"]) == 0
    assert "int8, dynamic: no calibration" in capsys.readouterr().out
    sidecar = json.loads((run_dir / "export" / "client.int8.onnx.json").read_text())
    assert sidecar["metadata"]["quantization"]["calibration"] is None
    assert sidecar["check"]["passed"] and "random images" in sidecar["check"]["image_source"]


def test_int8_refusals_are_user_errors(untrained_celeba_run, tiny_run_dir, tmp_path, capsys):
    assert main(["export", str(tiny_run_dir), "--out", str(tmp_path / "c.pt"),
                 "--format", "torchscript", "--int8"]) == 2
    assert "--int8 quantises an ONNX export" in capsys.readouterr().err
    assert main(["export", str(untrained_celeba_run("upper_bound")), "--out",
                 str(tmp_path / "u.onnx"), "--int8"]) == 2
    assert "no weights to quantise" in capsys.readouterr().err


def test_int8_quality_pairs_noise_draws_and_reports_chance(int8_run):
    from noisyarl.attacks.base import AttackSettings
    from noisyarl.deploy.int8_quality import int8_quality

    fp32 = int8_run / "export" / "client.onnx"
    settings = AttackSettings(max_epochs=1, patience=1, batch_size=16, noise_draws=2)
    # The same file on both sides: paired draws and initialisations make every difference 0.
    same = int8_quality(int8_run, fp32, fp32, seeds=(0, 1), settings=settings)
    assert same.fp32.utility == same.int8.utility
    assert same.fp32.privacy == same.int8.privacy
    assert same.privacy_difference.difference.mean == 0.0
    # The int8 file: two seeds, figures in percent beside the split's majority rates.
    result = int8_quality(int8_run, fp32, int8_path(fp32), seeds=(0, 1), settings=settings)
    assert len(result.int8.privacy) == len(result.fp32.utility) == 2
    assert result.sigma == pytest.approx(0.5)
    assert 50.0 <= result.privacy_chance <= 100.0 and 50.0 <= result.utility_chance <= 100.0
    assert all(0.0 <= value <= 100.0 for value in result.int8.utility + result.int8.privacy)
    table = result.markdown()
    assert "| int8 |" in table and "majority" in table
    assert json.loads(json.dumps(result.to_dict()))["seeds"] == [0, 1]
