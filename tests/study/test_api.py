"""The study's web API end to end (FastAPI TestClient over a real SQLite file)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from noisyarl.study.app import CODE_HEADER, create_app  # noqa: E402
from noisyarl.study.build import load_study  # noqa: E402


def _login(client, code):
    response = client.post("/api/session", json={"code": code})
    assert response.status_code == 200, response.text
    return response.json()


def _answer(client, code, image_id, choice):
    return client.post("/api/answers", json={"image_id": image_id, "choice": choice},
                       headers={CODE_HEADER: code})


def test_a_participant_answers_everything_and_answers_are_kept(toy_study, toy_codes):
    code = toy_codes[0]
    client = TestClient(create_app(toy_study))
    session = _login(client, code.lower())  # codes are typed by people: case does not matter
    assert session["question"]["text"] == "Is this person male?"
    assert [o["text"] for o in session["question"]["options"]] == ["Yes", "No", "Cannot judge"]
    assert (session["answered"], session["total"], session["done"]) == (0, 6, False)
    seen = []
    progress = session
    while not progress["done"]:
        image = client.get(f"/api/images/{progress['image_id']}", headers={CODE_HEADER: code})
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
        seen.append(progress["image_id"])
        response = _answer(client, code, progress["image_id"], 1)
        assert response.status_code == 201
        progress = response.json()
        assert progress["answered"] == len(seen)
    assert sorted(seen) == sorted(item["id"] for item in load_study(toy_study)["items"])
    # a fresh server process over the same folder still has every answer
    again = _login(TestClient(create_app(toy_study)), code)
    assert (again["answered"], again["done"]) == (6, True)


def test_each_participant_has_an_own_order_and_resumes_where_they_stopped(toy_study, toy_codes):
    client = TestClient(create_app(toy_study))
    orders = []
    for code in toy_codes:
        progress, order = _login(client, code), []
        for _ in range(2):
            order.append(progress["image_id"])
            progress = _answer(client, code, progress["image_id"], "cannot_judge").json()
        orders.append(order)
        resumed = _login(TestClient(create_app(toy_study)), code)
        assert resumed["answered"] == 2 and resumed["image_id"] == progress["image_id"]
    # 3 codes x 2 first images: with 6! orders, all three equal would be a 1 in 900 event
    assert len({tuple(order) for order in orders}) > 1


def test_participants_cannot_touch_each_others_answers(toy_study, toy_codes):
    alice, bob = toy_codes[:2]
    client = TestClient(create_app(toy_study))
    first = _login(client, alice)["image_id"]
    assert _answer(client, alice, first, 1).status_code == 201
    bob_progress = _login(client, bob)
    assert bob_progress["answered"] == 0  # nothing of Alice's is visible
    # Bob answering Alice's current image out of his own order is refused (unless it is his)
    alice_next = client.get("/api/next", headers={CODE_HEADER: alice}).json()["image_id"]
    if alice_next != bob_progress["image_id"]:
        assert _answer(client, bob, alice_next, 0).status_code == 409
    # an unknown code reads and writes nothing
    for request in (lambda h: client.get("/api/next", headers=h),
                    lambda h: client.get(f"/api/images/{first}", headers=h),
                    lambda h: client.post("/api/answers", json={"image_id": first, "choice": 0},
                                          headers=h)):
        assert request({CODE_HEADER: "AAAA-BBBB-CCCC"}).status_code == 401
        assert request({}).status_code == 401
    assert client.post("/api/session", json={"code": "guess"}).status_code == 401
    assert client.get("/api/next", headers={CODE_HEADER: alice}).json()["answered"] == 1


@pytest.mark.parametrize("body", [
    "not json", json.dumps({"image_id": "x"}), json.dumps({"choice": 1}),
    json.dumps({"image_id": 5, "choice": 1}), json.dumps({"image_id": "x", "choice": [1]}),
    json.dumps({"image_id": "x", "choice": 1, "method": "noisy_arl"}),
    json.dumps({"image_id": "x" * 65, "choice": 1}),
])
def test_malformed_bodies_are_refused_with_json(toy_study, toy_codes, body):
    client = TestClient(create_app(toy_study))
    _login(client, toy_codes[0])
    response = client.post("/api/answers", content=body,
                           headers={CODE_HEADER: toy_codes[0],
                                    "Content-Type": "application/json"})
    assert response.status_code == 422 and "detail" in response.json()
    assert client.get("/api/next", headers={CODE_HEADER: toy_codes[0]}).status_code == 200


def test_wrong_answers_are_refused_and_the_server_keeps_serving(toy_study, toy_codes):
    code = toy_codes[0]
    client = TestClient(create_app(toy_study))
    current = _login(client, code)["image_id"]
    assert _answer(client, code, "0123456789abcdef", 1).status_code == 404  # unknown id
    assert _answer(client, code, "../manifest", 1).status_code == 404
    assert client.get("/api/images/0123456789abcdef",
                      headers={CODE_HEADER: code}).status_code == 404
    assert _answer(client, code, current, 7).status_code == 422  # not an option
    assert _answer(client, code, current, True).status_code == 422  # not an int or a string
    assert _answer(client, code, current, 1).status_code == 201
    duplicate = _answer(client, code, current, 0)  # no revising
    assert duplicate.status_code == 409 and "final" in duplicate.json()["detail"]
    assert client.get(f"/api/images/{current}", headers={CODE_HEADER: code}).status_code == 409
    ids = [item["id"] for item in load_study(toy_study)["items"]]
    upcoming = client.get("/api/next", headers={CODE_HEADER: code}).json()["image_id"]
    later = next(i for i in ids if i not in (current, upcoming))
    assert _answer(client, code, later, 1).status_code == 409  # skipping ahead
    assert _answer(client, code, upcoming, 0).status_code == 201


def test_nothing_served_reveals_method_or_true_label(toy_study, toy_codes):
    manifest = load_study(toy_study)
    client = TestClient(create_app(toy_study))
    code = toy_codes[0]
    pages = [client.get("/").text, client.get("/static/app.js").text]
    replies = [_login(client, code)]
    while not replies[-1]["done"]:
        replies.append(_answer(client, code, replies[-1]["image_id"], "cannot_judge").json())
    assert set(replies[0]) == {"code", "question", "answered", "total", "done", "image_id"}
    assert all(set(reply) == {"answered", "total", "done", "image_id"} for reply in replies[1:])
    served = "\n".join(pages + [json.dumps(reply, ensure_ascii=False) for reply in replies])
    for secret in ("noisy_arl", "σ", "upper_bound", *manifest["methods"]):
        assert secret not in served
    for path in ("/manifest.json", "/static/../manifest.json", "/answers.sqlite",
                 "/participant_codes.txt", "/docs", "/openapi.json"):
        assert client.get(path).status_code == 404
    assert "default-src 'self'" in client.get("/").headers["content-security-policy"]
