"""The study app under oversized and malformed requests: refused early, short answers, no echo."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from noisyarl.cli import main  # noqa: E402
from noisyarl.study.app import CODE_HEADER, MAX_BODY_BYTES, create_app  # noqa: E402

#: Every refusal is a status and a sentence or two; this is far above any of them.
SHORT = 1000
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def client(toy_study):
    return TestClient(create_app(toy_study))


def _progress(client, code) -> int:
    return client.get("/api/next", headers={CODE_HEADER: code}).json()["answered"]


def test_a_10_mb_body_is_refused_before_parsing_and_not_echoed(client, toy_codes):
    body = json.dumps({"code": "x" * 10_000_000})
    response = client.post("/api/session", content=body, headers=JSON)
    assert response.status_code == 413  # parsed, it would be a 422 for the too-long code
    assert len(response.content) < SHORT and "limit" in response.json()["detail"]
    assert response.headers["x-content-type-options"] == "nosniff"  # still our headers
    assert client.post("/api/session", json={"code": toy_codes[0]}).status_code == 200


def test_a_body_without_a_length_is_cut_off_while_streaming(client):
    def chunks():
        for _ in range(64):
            yield b"x" * 4096

    response = client.post("/api/session", content=chunks(), headers=JSON)
    assert response.request.headers.get("content-length") is None
    assert response.status_code == 413 and len(response.content) < SHORT


def test_a_body_longer_than_its_declared_length_is_cut_off(client):
    body = json.dumps({"code": "x" * (4 * MAX_BODY_BYTES)}).encode()
    response = client.post("/api/session", content=body,
                           headers={**JSON, "Content-Length": "20"})
    assert response.request.headers["content-length"] == "20"
    assert response.status_code == 413


def test_an_oversized_answer_records_nothing(client, toy_codes):
    code = toy_codes[0]
    image_id = client.post("/api/session", json={"code": code}).json()["image_id"]
    body = json.dumps({"image_id": image_id, "choice": 1, "pad": "y" * MAX_BODY_BYTES})
    response = client.post("/api/answers", content=body, headers={**JSON, CODE_HEADER: code})
    assert response.status_code == 413 and _progress(client, code) == 0


@pytest.mark.parametrize("body", [
    {"code": "c" * 15_000},                       # too long: names the field, not the value
    {"code": "K7QM", "k" * 15_000: 1},            # an unknown field with a huge name
    {"code": ["v" * 3000] * 4},                   # wrong type
])
def test_a_malformed_body_gets_a_short_422_without_the_input(client, body):
    response = client.post("/api/session", content=json.dumps(body), headers=JSON)
    assert response.status_code == 422
    assert len(response.content) < SHORT
    problems = response.json()["detail"]
    assert problems and all(set(problem) == {"loc", "msg", "type"} for problem in problems)
    assert '"input"' not in response.text and "c" * 100 not in response.text
    assert "k" * 100 not in response.text and "v" * 100 not in response.text


def test_a_body_that_is_not_json_gets_a_short_422(client):
    response = client.post("/api/session", content=b"{" + b"z" * 15_000, headers=JSON)
    assert response.status_code == 422 and len(response.content) < SHORT


@pytest.mark.parametrize("port", ["99999", "-1", "0", "http"])
def test_study_serve_refuses_a_bad_port_as_a_usage_error(toy_study, capsys, port):
    with pytest.raises(SystemExit) as exit_info:
        main(["study", "serve", str(toy_study), "--port", port])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "--port: expected a port number in 1..65535" in error and "Traceback" not in error
