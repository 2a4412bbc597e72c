"""Answer a built user study with scripted participants, through the real web API.

A scripted participant is an "honest guesser": a small CNN trained on the *raw* training images
of the dataset for the private label (its knowledge of faces) looks at each reconstruction the
server shows; the participant answers the CNN's class when its probability exceeds their own
confidence threshold, and "Cannot judge" otherwise. Participants differ in their threshold and in
perception noise added to the CNN's logit. They see only what a browser sees (the API), never the
manifest. One participant stops halfway and resumes with the same code.

    python benchmarks/study_scripted_participants.py STUDY --root DATA [--participants 8]

then ``noisyarl study results STUDY``.
"""

from __future__ import annotations

import argparse
import io
import random
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch
import uvicorn
from PIL import Image
from torch import nn
from torch.nn import functional as F

from noisyarl.data.registry import load_splits
from noisyarl.study.app import CODE_HEADER, create_app
from noisyarl.study.build import CODES_FILE, load_study


def observer_cnn(splits, label: str, epochs: int, seed: int) -> nn.Module:
    """A small CNN (raw image -> one logit for the positive class), trained on the train split."""
    torch.manual_seed(seed)
    def block(inputs: int, outputs: int) -> list[nn.Module]:
        return [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(),
                nn.MaxPool2d(2)]

    model = nn.Sequential(*block(3, 16), *block(16, 32), *block(32, 64),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = splits["train"].images.float() / 255
    targets = splits["train"].labels[label].float()
    for _ in range(epochs):
        for batch in torch.randperm(len(images)).split(32):
            loss = F.binary_cross_entropy_with_logits(model(images[batch]).reshape(-1),
                                                      targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    model.eval()
    test = splits["test"]
    with torch.no_grad():
        predicted = (model(test.images.float() / 255).reshape(-1) > 0).long()
    accuracy = float((predicted == test.labels[label]).float().mean())
    print(f"observer CNN: {100 * accuracy:.1f}% on the raw test images")
    return model


def serve_in_thread(study: Path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(study), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{listener.getsockname()[1]}"


def answer(client: httpx.Client, code: str, model: nn.Module, threshold: float,
           noise: float, rng: random.Random, stop_after: int | None = None) -> int:
    """Answer ``code``'s images (at most ``stop_after``); returns how many were answered."""
    session = client.post("/api/session", json={"code": code}).json()
    options = {str(option["text"]): option["value"] for option in session["question"]["options"]}
    progress, given = session, 0
    while not progress["done"] and (stop_after is None or given < stop_after):
        headers = {CODE_HEADER: code}
        png = client.get(f"/api/images/{progress['image_id']}", headers=headers).content
        pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)
        with torch.no_grad():
            logit = float(model(torch.from_numpy(pixels / 255).permute(2, 0, 1)[None]))
        probability = 1 / (1 + np.exp(-(logit + rng.gauss(0, noise))))
        if max(probability, 1 - probability) < threshold:
            choice = options["Cannot judge"]
        else:
            choice = options["Yes"] if probability > 0.5 else options["No"]
        response = client.post("/api/answers", headers=headers,
                               json={"image_id": progress["image_id"], "choice": choice})
        response.raise_for_status()
        progress, given = response.json(), given + 1
    return given


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("study")
    parser.add_argument("--root", required=True, help="the dataset root the study was built on")
    parser.add_argument("--participants", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=8, help="observer CNN epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    study = Path(args.study)
    manifest = load_study(study)  # only for the dataset settings; the answers never use it
    if "Yes" not in [option["text"] for option in manifest["question"]["options"]]:
        raise SystemExit("this script answers Yes / No questions only")
    size = int(Image.open(next((study / "images").glob("*.png"))).size[0])
    splits = load_splits("celeba", args.root, size, progress=False)
    model = observer_cnn(splits, manifest["private_label"], args.epochs, args.seed)
    codes = (study / CODES_FILE).read_text().split()[:args.participants]
    rng = random.Random(args.seed)
    server, thread, url = serve_in_thread(study)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for number, code in enumerate(codes):
                threshold, noise = rng.uniform(0.6, 0.9), rng.uniform(0.0, 1.0)
                if number == 0:  # closes the tab halfway, then resumes with the same code
                    first = answer(client, code, model, threshold, noise, rng, stop_after=17)
                    rest = answer(client, code, model, threshold, noise, rng)
                    print(f"participant 1 answered {first}, came back and answered {rest}")
                else:
                    answer(client, code, model, threshold, noise, rng)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    print(f"{len(codes)} scripted participants answered every image of {study}")


if __name__ == "__main__":
    main()
