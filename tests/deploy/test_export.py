"""Export round trips: ONNX (ONNX Runtime) and TorchScript, with and without the noise inside."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from noisyarl.cli import main
from noisyarl.client import LocalObfuscator
from noisyarl.deploy.export import ExportedClient, client_for_export
from noisyarl.runners.runs import load_run


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_export_round_trip_with_and_without_noise(tiny_run_dir, tmp_path, fmt):
    run = load_run(tiny_run_dir)
    suffix = ".onnx" if fmt == "onnx" else ".pt"
    noisy, clean = tmp_path / f"noisy{suffix}", tmp_path / f"clean{suffix}"
    assert main(["export", str(tiny_run_dir), "--format", fmt, "--out", str(noisy)]) == 0
    assert main(["export", str(tiny_run_dir), "--format", fmt, "--out", str(clean),
                 "--no-noise"]) == 0

    images = torch.rand(5, 3, 40, 40, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        reference = client_for_export(run.defence.client, noise=False)(images).numpy()
    clean_z = ExportedClient(clean)(images)
    np.testing.assert_allclose(clean_z, reference, atol=1e-4 * max(1.0, np.abs(reference).max()))

    exported = ExportedClient(noisy)
    first, second = exported(images), exported(images)
    assert first.shape == reference.shape
    assert not np.allclose(first, second)  # fresh noise on every call
    residual = np.concatenate([first - reference, second - reference])
    assert abs(residual.mean()) < 0.03 * 0.5 and residual.std() == pytest.approx(0.5, rel=0.03)

    sidecar = json.loads(noisy.with_name(noisy.name + ".json").read_text())
    assert sidecar["check"]["passed"] and sidecar["metadata"]["noise"] is True
    assert exported.metadata["noise_sigma"] == 0.5 and exported.metadata["method"] == "noisy_arl"
    assert ExportedClient(clean).metadata["verification_only"] is True


def test_dynamic_batch_axis(tiny_run_dir, tmp_path):
    path = tmp_path / "client.onnx"
    main(["export", str(tiny_run_dir), "--out", str(path)])
    exported = ExportedClient(path)
    for batch in (1, 3, 17):
        assert exported(np.random.rand(batch, 3, 40, 40)).shape[0] == batch
    with pytest.raises(ValueError, match="images must have shape"):
        exported(np.random.rand(2, 3, 32, 32))


def test_device_sdk_refuses_a_verification_only_export(tiny_run_dir, tmp_path):
    path = tmp_path / "clean.onnx"
    main(["export", str(tiny_run_dir), "--out", str(path), "--no-noise"])
    with pytest.raises(ValueError, match="verification only"):
        LocalObfuscator(path)
    assert LocalObfuscator(path, allow_no_noise=True).z_shape == (128, 5, 5)


# Every registered defence's client exports to ONNX and matches PyTorch: part of the defence
# contract (tests/methods/test_contract.py::test_client_exports_to_onnx, DefenceContract in
# tests/methods/conftest.py), which a new defence meets with no edit here.


def test_export_of_a_folder_without_a_run_is_a_user_error(tmp_path, capsys):
    assert main(["export", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def _normalised_run(root, run_dir):
    """An untrained noisy-ARL run (σ = 0.5, ``method.params.normalize: true``) whose last batch
    norm's γ is grown 50-fold, as training grows it (docs/method.md §2)."""
    from noisyarl.builders import defence_from_config, resolve_tasks
    from noisyarl.config import config_from_dict, save_config
    from noisyarl.data.registry import available_labels
    from noisyarl.runners.runs import save_tasks
    from noisyarl.training.checkpoint import save_checkpoint

    config = config_from_dict({
        "name": "normalised",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "noisy_arl", "split": 2, "sigma": 0.5,
                   "params": {"normalize": True}},
    })
    utility, private = resolve_tasks(config, available_labels("celeba", root))
    torch.manual_seed(0)
    defence = defence_from_config(config, utility, private)
    last_norm = [m for m in defence.client.modules() if isinstance(m, torch.nn.BatchNorm2d)][-1]
    with torch.no_grad():
        last_norm.weight.mul_(50.0)
    run_dir.mkdir(parents=True)
    save_config(config, run_dir / "config.yaml")
    save_tasks(run_dir, utility, private)
    save_checkpoint(run_dir / "checkpoints" / "best.pt", {"model": defence.state_dict()})
    return run_dir


def test_normalisation_is_inside_the_exported_graph(tiny_celeba_root, tmp_path):
    run_dir = _normalised_run(tiny_celeba_root, tmp_path / "run")
    path = tmp_path / "clean.onnx"
    assert main(["export", str(run_dir), "--out", str(path), "--no-noise"]) == 0

    client = load_run(run_dir).defence.client
    images = torch.rand(6, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        raw = client_for_export(client, noise=False).extractor(images)
        reference = client_for_export(client, noise=False)(images).numpy()
    assert (raw.flatten(1).pow(2).mean(dim=1).sqrt() > 2).all()  # far from unit RMS
    z = ExportedClient(path)(images)
    rms = np.sqrt((z.astype(np.float64) ** 2).reshape(len(z), -1).mean(axis=1))
    np.testing.assert_allclose(rms, np.ones(len(z)), atol=1e-4, rtol=0)
    np.testing.assert_allclose(z, reference, atol=1e-4)
    assert json.loads(path.with_name(path.name + ".json").read_text())["check"]["passed"]
