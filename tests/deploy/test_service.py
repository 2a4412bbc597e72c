"""The split-inference service end to end on loopback: a real uvicorn server, real HTTP."""

from __future__ import annotations

import socket
import time

import httpx
import numpy as np
import pytest
import torch
from safetensors.torch import save as safetensors_save

from noisyarl.client import LocalObfuscator, ServiceError, SplitInferenceClient
from noisyarl.deploy.service import ServiceSettings, create_app, utility_model_from_run
from noisyarl.deploy.wire import MEDIA_TYPE, encode_z
from noisyarl.runners.runs import load_run

TOKEN = "s3cret-token"
MAX_BATCH = 8


@pytest.fixture(scope="module")
def served(tiny_run_dir, tiny_onnx_export, loopback_server):
    """(server, onnx path, loaded run) with a token configured."""
    path = tiny_onnx_export
    app = create_app(utility_model_from_run(tiny_run_dir),
                     ServiceSettings(token=TOKEN, max_batch=MAX_BATCH))
    with loopback_server(app) as server:
        yield server, path, load_run(tiny_run_dir)


def _post(server, body: bytes, token: str | None = TOKEN, **headers) -> httpx.Response:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(f"{server.url}/v1/predict", content=body,
                      headers={"Content-Type": MEDIA_TYPE, **headers}, timeout=10)


def test_sdk_predictions_equal_the_in_process_utility_head(served):
    server, path, run = served
    images = torch.rand(6, 3, 40, 40, generator=torch.Generator().manual_seed(2))
    with SplitInferenceClient(server.url, LocalObfuscator(path), token=TOKEN) as client:
        assert client.health() == {"status": "ok"}
        assert client.model_info()["z_shape"] == [128, 5, 5]
        z = client.obfuscator(images)
        prediction = client.predict_z(z)
        with torch.no_grad():
            expected = run.defence.utility_head(torch.from_numpy(z))
        np.testing.assert_allclose(prediction.outputs, expected.numpy(), rtol=1e-5, atol=1e-5)
        assert prediction.predictions == (expected.reshape(-1) > 0).long().tolist()
        assert prediction.task == "Smiling" and len(prediction.probabilities) == 6
        assert len(client.predict(images).predictions) == 6  # images stay local, z is sent


def test_compact_wire_dtypes_give_the_same_predictions(served):
    server, path, run = served
    images = torch.rand(8, 3, 40, 40, generator=torch.Generator().manual_seed(3))
    obfuscator = LocalObfuscator(path)
    z = obfuscator(images)
    answers = {}
    for dtype in ("float32", "bfloat16"):
        with SplitInferenceClient(server.url, obfuscator, TOKEN, wire_dtype=dtype) as client:
            answers[dtype] = client.predict_z(z)
    np.testing.assert_allclose(answers["bfloat16"].outputs, answers["float32"].outputs,
                               rtol=0.05, atol=0.05)


def test_every_malformed_request_is_rejected_and_the_server_stays_up(served):
    server, _, _ = served
    good = encode_z(torch.randn(2, 128, 5, 5))
    nan = torch.randn(2, 128, 5, 5)
    nan[0, 0, 0, 0] = float("nan")
    cases = {
        "wrong shape": (_post(server, encode_z(torch.randn(2, 64, 5, 5))), 422),
        "wrong dtype": (_post(server, safetensors_save(
            {"z": torch.ones(2, 128, 5, 5, dtype=torch.int64)})), 422),
        "NaN": (_post(server, safetensors_save({"z": nan})), 422),
        "truncated": (_post(server, good[: len(good) // 2]), 400),
        "garbage": (_post(server, b"not a tensor at all"), 400),
        "over the batch limit": (_post(server, encode_z(torch.randn(MAX_BATCH + 1, 128, 5, 5))),
                                 413),
        "oversize body": (_post(server, b"\0" * (4 * MAX_BATCH * 128 * 25 + 4096)), 413),
        "missing token": (_post(server, good, token=None), 401),
        "wrong token": (_post(server, good, token="guess"), 401),
        "model info without token": (httpx.get(f"{server.url}/v1/model"), 401),
    }
    for name, (response, status) in cases.items():
        assert response.status_code == status, name
        assert response.json()["error"]["status"] == status, name
    assert cases["missing token"][0].headers["www-authenticate"] == "Bearer"
    assert _post(server, good).status_code == 200  # still serving
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}


def test_sdk_raises_the_servers_reason(served):
    server, path, _ = served
    with SplitInferenceClient(server.url, LocalObfuscator(path), token="wrong") as client:
        with pytest.raises(ServiceError, match="HTTP 401"):
            client.predict(np.random.rand(1, 3, 40, 40))
    with SplitInferenceClient(server.url, LocalObfuscator(path), token=TOKEN) as client:
        with pytest.raises(ServiceError, match="HTTP 413"):
            client.predict(np.random.rand(MAX_BATCH + 1, 3, 40, 40))


def test_without_a_token_no_authentication_is_asked(tiny_run_dir, loopback_server):
    app = create_app(utility_model_from_run(tiny_run_dir), ServiceSettings(max_batch=2))
    with loopback_server(app) as server:
        response = _post(server, encode_z(torch.randn(1, 128, 5, 5)), token=None)
        assert response.status_code == 200 and response.json()["batch_size"] == 1
        assert httpx.get(f"{server.url}/v1/model").json()["auth"] is False


def test_serve_command_takes_its_token_from_the_environment(tiny_run_dir):
    import os
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [sys.executable, "-m", "noisyarl.cli", "serve", str(tiny_run_dir), "--port", str(port)],
        env={**os.environ, "NOISYARL_TOKEN": TOKEN}, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert httpx.get(f"{url}/health", timeout=1).status_code == 200
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None
                time.sleep(0.2)
        assert httpx.get(f"{url}/v1/model").status_code == 401
        info = httpx.get(f"{url}/v1/model", headers={"Authorization": f"Bearer {TOKEN}"}).json()
        assert info["method"] == "noisy_arl" and info["auth"] is True
    finally:
        server.terminate()
        server.wait(timeout=20)


@pytest.mark.parametrize("port", ["99999", "-1", "0", "80a"])
def test_serve_refuses_a_bad_port_as_a_usage_error(tiny_run_dir, capsys, port):
    from noisyarl.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", str(tiny_run_dir), "--port", port])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--port: expected a port number in 1..65535" in error and "Traceback" not in error
