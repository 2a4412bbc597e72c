"""``noisyarl study build``: choose the study's images and write every method's reconstruction.

Appendix C: "we first randomly sample 30 images from CelebA that ResNet18 classifies correctly
[...] to address the possibility that the original images yield ambiguous results". The study
asks about the *private* attribute, so "classified correctly" has to cover that attribute; the
upper-bound run's own model only solves the utility task. We therefore require both:

* the upper-bound run's utility ResNet18 classifies the image's utility label correctly (skipped
  for a regression utility), and
* a ResNet18 trained on raw images for the private label classifies it correctly. It is the
  upper bound's own leakage attacker (same architecture, settings and seed as the run's
  privacy figure, retrained here because runs do not keep attacker weights).

Among those test images we draw ``n`` at random, balanced over the private classes (appendix C:
"the data we presented is balanced"), and reconstruct each with every defended run's decoder
(saved by the run's reconstruction attack; retrained with the run's settings if missing).

The study folder holds ``manifest.json`` (which method made which image, the true labels: never
served), ``images/<opaque id>.png``, ``participant_codes.txt`` (hand one code to each
participant) and ``overview.png`` (originals over each method's reconstructions, for the
organiser). Answers go to ``answers.sqlite`` when the study is served.
"""

from __future__ import annotations

import io
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from noisyarl.attacks.leakage import run_leakage_attack
from noisyarl.attacks.reconstruction import load_decoder, reconstruct, run_reconstruction_attack
from noisyarl.attacks.view import ZView
from noisyarl.builders import attack_settings, load_data, training_steps
from noisyarl.data.base import DatasetError, ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.errors import ConfigError
from noisyarl.evaluation.plots import save_image_grid
from noisyarl.runners.runs import LoadedRun, load_run
from noisyarl.runtime import StepContext, resolve_device
from noisyarl.utils.io import atomic_write_bytes, atomic_write_text, read_json, write_json

MANIFEST_FILE = "manifest.json"
CODES_FILE = "participant_codes.txt"
IMAGES_DIR = "images"
CANNOT_JUDGE = "cannot_judge"

#: Questions for the CelebA attributes the generated faces carry; other labels get a generic one.
QUESTIONS = {
    "Male": "Is this person male?",
    "Smiling": "Is this person smiling?",
    "Eyeglasses": "Is this person wearing eyeglasses?",
    "Young": "Is this person young?",
    "Mouth_Slightly_Open": "Is this person's mouth slightly open?",
    "gender": "What is this person's gender?",
    "race": "Which race group does this person belong to?",
    "age": "How old is this person?",
}

#: Letters and digits that cannot be misread for one another (no 0/O, 1/I).
_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


@dataclass(frozen=True)
class Question:
    """What a participant is asked about every image.

    options: ``{"value": class index, "text": button label}`` in display order; "Cannot judge"
    (value ``"cannot_judge"``) is always offered after them.
    """

    text: str
    options: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        cannot = {"value": CANNOT_JUDGE, "text": "Cannot judge"}
        return {"text": self.text, "options": [*self.options, cannot]}


def question_for(task: Task, text: str | None = None) -> Question:
    """The question about ``task``'s label: Yes / No for a CelebA-style binary attribute (class
    names ``("not X", "X")``), else one button per class name.

    >>> from noisyarl.data.base import LabelInfo
    >>> info = LabelInfo("binary", 2, class_names=("not Male", "Male"))
    >>> question_for(Task("Male", info)).to_dict()["options"][0]
    {'value': 1, 'text': 'Yes'}
    """
    if task.kind == "regression":
        raise ConfigError(f"tasks.private: a user study needs a class label; {task.label!r} "
                          "is a regression target")
    names = task.info.class_names or tuple(str(k) for k in range(task.info.num_classes or 2))
    yes_no = task.kind == "binary" and names[0] == f"not {names[1]}"
    if yes_no:
        options = ({"value": 1, "text": "Yes"}, {"value": 0, "text": "No"})
        default = QUESTIONS.get(task.label, f"Does this image show: {_readable(task.label)}?")
    else:
        options = tuple({"value": k, "text": name} for k, name in enumerate(names))
        default = QUESTIONS.get(task.label, f"Which {_readable(task.label)} is shown?")
    return Question(text or default, options)


def _readable(label: str) -> str:
    return label.replace("_", " ").lower()


def pick_balanced(labels: torch.Tensor, eligible: torch.Tensor, n: int, num_classes: int,
                  seed: int) -> torch.Tensor:
    """``n`` distinct indices where ``eligible`` [N] (bool) holds, balanced over ``labels`` [N].

    Each class gets ``n // num_classes`` images; the remainder goes to randomly chosen classes
    (one extra each). Returns the indices sorted. Raises DatasetError when a class has too few
    eligible images.
    """
    generator = torch.Generator().manual_seed(seed)
    quota = torch.full((num_classes,), n // num_classes, dtype=torch.long)
    quota[torch.randperm(num_classes, generator=generator)[:n % num_classes]] += 1
    chosen = []
    for label in range(num_classes):
        pool = torch.nonzero(eligible & (labels == label)).reshape(-1)
        if len(pool) < quota[label]:
            raise DatasetError(
                f"only {len(pool)} test images of class {label} are classified correctly by the "
                f"upper bound, {int(quota[label])} needed; lower --n or train the runs longer")
        chosen.append(pool[torch.randperm(len(pool), generator=generator)[:quota[label]]])
    return torch.cat(chosen).sort().values


def new_participant_codes(count: int) -> list[str]:
    """``count`` random codes like ``K7QM-2XHD-9RTA`` (60 bits each: not guessable)."""
    def one() -> str:
        letters = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
        return "-".join(letters[i:i + 4] for i in range(0, 12, 4))
    return [one() for _ in range(count)]


def write_study(
    out: str | Path,
    question: Question,
    reconstructions: dict[str, torch.Tensor],
    labels: torch.Tensor,
    *,
    num_classes: int,
    participants: int = 30,
    originals: torch.Tensor | None = None,
    details: dict[str, Any] | None = None,
) -> Path:
    """Write a study folder: one PNG per (method, image) under a fresh opaque id, the manifest
    and the participant codes.

    reconstructions: method label -> images [n, 3, S, S] in [0, 1], row i of every method shows
    the test image whose private class is ``labels[i]``. ``details`` (provenance) goes into the
    manifest. Returns the manifest's path.
    """
    out = Path(out)
    if (out / MANIFEST_FILE).exists():
        raise FileExistsError(f"{out} already holds a study; choose a new --out")
    items = []
    for method, images in reconstructions.items():
        for row, image in enumerate(images):
            image_id = secrets.token_hex(8)
            atomic_write_bytes(out / IMAGES_DIR / f"{image_id}.png", png_bytes(image))
            items.append({"id": image_id, "method": method, "row": row,
                          "label": int(labels[row])})
    codes = new_participant_codes(participants)
    atomic_write_text(out / CODES_FILE, "\n".join(codes) + "\n")
    if originals is not None:
        save_image_grid(originals, list(reconstructions.items()), out / "overview.png",
                        max_images=len(originals))
    manifest = {
        "question": question.to_dict(),
        "num_classes": num_classes,
        "chance": 1.0 / num_classes,
        "methods": list(reconstructions),
        "items": items,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        **(details or {}),
    }
    return write_json(out / MANIFEST_FILE, manifest)


def load_study(study_dir: str | Path) -> dict[str, Any]:
    """The manifest of the study in ``study_dir``; ConfigError when it is not a built study."""
    path = Path(study_dir) / MANIFEST_FILE
    if not path.is_file():
        raise ConfigError(f"{study_dir}: not a study folder (no {MANIFEST_FILE}); "
                          "make one with `noisyarl study build`")
    return read_json(path)


def png_bytes(image: torch.Tensor) -> bytes:
    """An image [3, H, W] in [0, 1] as PNG bytes (no metadata chunks)."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def build_study(
    run_dirs: list[str | Path],
    out: str | Path,
    *,
    n: int = 30,
    seed: int = 0,
    participants: int = 30,
    question: str | None = None,
    classifier_epochs: int | None = None,
    progress: bool = True,
) -> Path:
    """Build a study from one upper-bound run and one or more defended runs (module docstring).

    ``classifier_epochs`` overrides the epochs of the private-label ResNet18 (default: the
    upper-bound run's ``attacks.leakage.epochs``). Returns the manifest's path.
    """
    if n < 1:
        raise ConfigError("--n: need at least one image")
    if (Path(out) / MANIFEST_FILE).exists():
        raise FileExistsError(f"{out} already holds a study; choose a new --out")
    runs = [load_run(run_dir) for run_dir in run_dirs]
    bound, defended = _split_runs(runs)
    private = bound.private
    study_question = question_for(private, question)
    splits = load_data(bound.config, progress=progress)
    context = StepContext(resolve_device(bound.config.train.device))
    eligible = _correct_on_raw_images(bound, splits, context, classifier_epochs, progress)
    num_classes = private.info.num_classes or 2
    test = splits["test"]
    chosen = pick_balanced(test.labels[private.label], eligible, n, num_classes, seed)
    originals = test.images[chosen].float() / 255
    reconstructions = {}
    for label, run in zip(_method_labels(defended), defended, strict=True):
        decoder = load_decoder(run.run_dir)
        if decoder is None:
            decoder = _retrain_decoder(run, splits, context, progress)
        torch.manual_seed(seed)  # the client's noise draw, reproducible
        reconstructions[label] = reconstruct(run.defence.client.cpu(), decoder.cpu(), originals)
    details = {
        "private_label": private.label,
        "class_names": list(private.info.class_names or []),
        "seed": seed,
        "test_indices": chosen.tolist(),
        "eligible_test_images": int(eligible.sum()),
        "runs": {label: str(run.run_dir)
                 for label, run in zip(_method_labels(defended), defended, strict=True)},
        "upper_bound_run": str(bound.run_dir),
    }
    return write_study(out, study_question, reconstructions, test.labels[private.label][chosen],
                       num_classes=num_classes, participants=participants, originals=originals,
                       details=details)


def _split_runs(runs: list[LoadedRun]) -> tuple[LoadedRun, list[LoadedRun]]:
    """(the one upper-bound run, the defended runs); the runs must share data and tasks."""
    bounds = [run for run in runs if not run.defence.obfuscates]
    defended = [run for run in runs if run.defence.obfuscates]
    if len(bounds) != 1:
        raise ConfigError(f"study build: give exactly one upper_bound run, got {len(bounds)}")
    if not defended:
        raise ConfigError("study build: give at least one defended run besides the upper bound")
    reference = bounds[0]
    for run in defended:
        for what, mine, theirs in (
            ("data.dataset", run.config.data.dataset, reference.config.data.dataset),
            ("data.image_size", run.config.data.image_size, reference.config.data.image_size),
            ("tasks.private", run.private.label, reference.private.label),
        ):
            if mine != theirs:
                raise ConfigError(f"study build: {run.run_dir} has {what} {mine!r}, the upper "
                                  f"bound {theirs!r}; all runs must share data and tasks")
    return reference, defended


def _method_labels(runs: list[LoadedRun]) -> list[str]:
    """Row labels like ``noisy_arl K=3 σ=2``; the run folder's name is added where they clash."""
    labels = []
    for run in runs:
        described = run.defence.describe()
        label = described["method"]
        if run.defence.has_split:
            label += f" K={described['split']}"
        if run.defence.has_noise:
            label += f" σ={described['sigma']:g}"
        labels.append(label)
    return [f"{label} [{run.run_dir.name}]" if labels.count(label) > 1 else label
            for label, run in zip(labels, runs, strict=True)]


def _correct_on_raw_images(bound: LoadedRun, splits: dict[str, ImageSplit],
                           context: StepContext, epochs: int | None,
                           progress: bool) -> torch.Tensor:
    """Bool [N_test]: the upper bound gets the utility label right (unless it is a regression)
    and a raw-image ResNet18 gets the private label right."""
    config = bound.config
    settings = attack_settings(config, config.attacks.leakage,
                               defence_steps=training_steps(config, len(splits["train"])),
                               epochs=epochs, progress=progress)
    classifier = bound.defence.make_attacker(bound.private.num_outputs)
    view = ZView.of(bound.defence.client, bound.defence.noise_module(), context, splits["test"])
    run_leakage_attack(view, classifier, splits, bound.private, settings)
    test = splits["test"]
    correct = _predictions(classifier, test, bound.private, context) == test.labels[
        bound.private.label]
    if bound.utility.kind != "regression":
        head = context.prepare_module(bound.defence.utility_head)
        correct &= _predictions(head, test, bound.utility, context) == test.labels[
            bound.utility.label]
        bound.defence.cpu()
    return correct


@torch.no_grad()
def _predictions(model: torch.nn.Module, split: ImageSplit, task: Task, context: StepContext,
                 batch_size: int = 256) -> torch.Tensor:
    """Predicted class [N] (long, CPU) of ``model`` (raw images -> logits) on ``split``."""
    model.eval()
    predicted = []
    for start in range(0, len(split), batch_size):
        images = context.prepare_images(split.images[start:start + batch_size]).float() / 255
        logits = model(images).float()
        if task.kind == "binary":
            predicted.append((logits.reshape(-1) > 0).long().cpu())
        else:
            predicted.append(logits.argmax(dim=1).cpu())
    return torch.cat(predicted)


def _retrain_decoder(run: LoadedRun, splits: dict[str, ImageSplit], context: StepContext,
                     progress: bool) -> torch.nn.Module:
    """Train the run's reconstruction attack again (its settings and seed) for its decoder; for
    runs made before decoders were saved."""
    config = run.config
    context.prepare_module(run.defence)
    settings = attack_settings(config, config.attacks.reconstruction,
                               defence_steps=training_steps(config, len(splits["train"])),
                               progress=progress)
    view = ZView.of(run.defence.client, run.defence.noise_module(), context, splits["test"])
    result = run_reconstruction_attack(view, splits, settings, image_size=config.data.image_size)
    return result.decoder
