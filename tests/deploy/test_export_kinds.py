"""`noisyarl export` says what the file does: noise inside, no noise, or the image itself."""

from __future__ import annotations

import json

import numpy as np

from noisyarl.cli import main
from noisyarl.client import LocalObfuscator
from noisyarl.deploy.export import ExportedClient


def _export(run_dir, out, capsys, *extra: str) -> tuple[str, dict, dict]:
    """(printed first line, metadata in the file, metadata in <file>.json) of one export."""
    assert main(["export", str(run_dir), "--out", str(out), *extra]) == 0
    printed = capsys.readouterr().out.splitlines()[0]
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())["metadata"]
    return printed, ExportedClient(out).metadata, sidecar


def test_noisy_run_says_noise_inside_with_its_sigma(tiny_run_dir, tmp_path, capsys):
    printed, metadata, sidecar = _export(tiny_run_dir, tmp_path / "c.onnx", capsys)
    assert printed.endswith("(noise inside (σ = 0.5))")
    assert metadata == sidecar
    assert (metadata["client_kind"], metadata["noise"], metadata["noise_sigma"]) == (
        "noise", True, 0.5)
    assert metadata["noise_description"] == "noise inside (σ = 0.5)"


def test_no_noise_export_says_verification_only(tiny_run_dir, tmp_path, capsys):
    printed, metadata, _ = _export(tiny_run_dir, tmp_path / "c.onnx", capsys, "--no-noise")
    assert "noise OFF: verification only (σ = 0.5 left out)" in printed
    assert metadata["client_kind"] == "verification_only" and metadata["noise"] is False
    assert metadata["verification_only"] is True


def test_sigma_zero_run_says_no_noise_not_noise_inside(untrained_celeba_run, tmp_path, capsys):
    out = tmp_path / "c.onnx"
    printed, metadata, _ = _export(untrained_celeba_run("noisy_arl", 0.0), out, capsys)
    assert "noise inside" not in printed and printed.endswith("(no noise: σ = 0 (plain ARL))")
    assert (metadata["client_kind"], metadata["noise"], metadata["noise_sigma"]) == (
        "no_noise", False, 0.0)
    assert metadata["verification_only"] is False  # a plain-ARL client is shippable
    obfuscator = LocalObfuscator(out)
    images = np.random.rand(2, 3, 40, 40).astype(np.float32)
    np.testing.assert_array_equal(obfuscator(images), obfuscator(images))  # deterministic


def test_upper_bound_says_it_sends_the_image_itself(untrained_celeba_run, tmp_path, capsys):
    out = tmp_path / "c.onnx"
    printed, metadata, _ = _export(untrained_celeba_run("upper_bound"), out, capsys)
    assert "noise inside" not in printed
    assert "identity client: sends the image itself" in printed
    assert metadata["client_kind"] == "identity" and metadata["noise"] is False
    images = np.random.rand(2, 3, 40, 40).astype(np.float32)
    np.testing.assert_array_equal(LocalObfuscator(out)(images), images)


def test_export_records_how_images_are_prepared(tiny_run_dir, tiny_onnx_export, tmp_path,
                                                capsys):
    out = tmp_path / "c.pt"
    _, torchscript, _ = _export(tiny_run_dir, out, capsys, "--format", "torchscript")
    metadata = ExportedClient(tiny_onnx_export).metadata
    assert {**torchscript, "format": "onnx"} == metadata  # both formats record the same
    assert metadata["image_size"] == 40
    preprocessing = metadata["preprocessing"]
    assert (preprocessing["dataset"], preprocessing["crop"]) == ("celeba", "center")
    assert (preprocessing["layout"], preprocessing["range"]) == ("NCHW", [0.0, 1.0])
    assert "centre-crop" in preprocessing["description"]
    assert metadata["input"]["shape"] == ["B", 3, 40, 40]  # the existing keys stay
