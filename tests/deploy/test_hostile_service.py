"""Hostile or careless requests to the split-inference service: never a wrong 200, never an echo."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors.torch import save as safetensors_save

from noisyarl.deploy.service import ServiceSettings, create_app, utility_model_from_run
from noisyarl.deploy.wire import MEDIA_TYPE, encode_z

Z_SHAPE = (128, 5, 5)  # the client of the tiny run (RN18_2 on 40 px)
#: An error answer is a status and one short sentence; this is far above any of them.
SHORT = 1000


@pytest.fixture(scope="module")
def client(tiny_run_dir):
    app = create_app(utility_model_from_run(tiny_run_dir), ServiceSettings(max_batch=4))
    return TestClient(app)


def _predict(client, body: bytes):
    return client.post("/v1/predict", content=body, headers={"Content-Type": MEDIA_TYPE})


def test_extreme_finite_z_is_refused_instead_of_answered_with_nulls(client):
    extreme = _predict(client, encode_z(torch.full((2, *Z_SHAPE), 3e38)))
    assert extreme.status_code == 422
    error = extreme.json()["error"]
    assert error["status"] == 422 and "not finite" in error["message"]
    normal = _predict(client, encode_z(torch.randn(2, *Z_SHAPE)))
    assert normal.status_code == 200
    answer = normal.json()
    values = [*sum(answer["outputs"], []), *answer["probabilities"]]
    assert all(isinstance(value, float) for value in values)  # numbers, never null


def test_a_header_quoting_a_huge_string_is_not_echoed(client):
    header = json.dumps({"z": "x" * 30_000}).encode()
    response = _predict(client, struct.pack("<Q", len(header)) + header)
    assert response.status_code == 400
    assert len(response.content) < SHORT and "x" * 200 not in response.text


def test_many_long_tensor_names_are_not_echoed(client):
    tensors = {f"{k:03d}" + "n" * 500: torch.zeros(1) for k in range(50)}
    response = _predict(client, safetensors_save(tensors))
    assert response.status_code == 422
    assert "exactly one tensor" in response.json()["error"]["message"]
    assert len(response.content) < SHORT


def test_model_info_says_how_to_prepare_images(client):
    info = client.get("/v1/model").json()
    assert info["image_size"] == 40 and info["z_shape"] == list(Z_SHAPE)
    preprocessing = info["preprocessing"]
    assert preprocessing["crop"] == "center"  # a CelebA run: centre square crop, then resize
    assert (preprocessing["image_size"], preprocessing["layout"]) == (40, "NCHW")
    assert preprocessing["range"] == [0.0, 1.0]
