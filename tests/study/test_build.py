"""Building a study: image choice, question wording, saved decoders, and the whole build on
tiny runs (an upper bound and a noisy-ARL run)."""

from __future__ import annotations

import shutil

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyarl.attacks.reconstruction import DECODER_FILE, load_decoder, save_decoder
from noisyarl.cli import main
from noisyarl.config import ConfigError
from noisyarl.data.base import DatasetError, LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.study.build import build_study, load_study, pick_balanced, question_for


@settings(max_examples=50, deadline=None)
@given(data=st.data(), num_classes=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_pick_balanced_draws_eligible_images_evenly(data, num_classes, seed):
    size = data.draw(st.integers(num_classes * 4, 80))
    labels = torch.tensor(data.draw(st.lists(st.integers(0, num_classes - 1), min_size=size,
                                             max_size=size)))
    eligible = torch.tensor(data.draw(st.lists(st.booleans(), min_size=size, max_size=size)))
    n = data.draw(st.integers(1, 12))
    per_class = [int((eligible & (labels == c)).sum()) for c in range(num_classes)]
    if min(per_class) < -(-n // num_classes):  # some class may not fill its quota
        try:
            chosen = pick_balanced(labels, eligible, n, num_classes, seed)
        except DatasetError:
            return
    else:
        chosen = pick_balanced(labels, eligible, n, num_classes, seed)
    assert len(chosen) == n == len(set(chosen.tolist()))
    assert bool(eligible[chosen].all())
    counts = torch.bincount(labels[chosen], minlength=num_classes)
    assert int(counts.max() - counts.min()) <= 1
    assert torch.equal(chosen, pick_balanced(labels, eligible, n, num_classes, seed))


def test_pick_balanced_says_when_too_few_images_qualify():
    labels, eligible = torch.tensor([0, 0, 1, 1]), torch.tensor([True, True, True, False])
    with pytest.raises(DatasetError, match="only 1 test images of class 1"):
        pick_balanced(labels, eligible, 4, 2, seed=0)


def test_question_wording_comes_from_the_task():
    male = Task("Male", LabelInfo("binary", 2, class_names=("not Male", "Male")))
    assert question_for(male).text == "Is this person male?"
    odd = Task("Wearing_Hat", LabelInfo("binary", 2, class_names=("not Wearing_Hat",
                                                                  "Wearing_Hat")))
    assert question_for(odd).text == "Does this image show: wearing hat?"
    race = Task("race", LabelInfo("multiclass", 3, class_names=("A", "B", "C")))
    options = question_for(race).to_dict()["options"]
    assert [o["text"] for o in options] == ["A", "B", "C", "Cannot judge"]
    assert [o["value"] for o in options] == [0, 1, 2, "cannot_judge"]
    assert question_for(male, "Man or woman?").text == "Man or woman?"
    with pytest.raises(ConfigError, match="regression"):
        question_for(Task("landmarks", LabelInfo("regression", dim=10)))


def test_runs_save_their_decoder_and_it_reloads_exactly(tiny_run_dir, tmp_path):
    decoder = load_decoder(tiny_run_dir)
    assert decoder is not None and (tiny_run_dir / DECODER_FILE).is_file()
    z = torch.randn(2, *decoder_z(decoder))
    save_decoder(decoder, tmp_path)
    assert torch.equal(load_decoder(tmp_path)(z), decoder(z))
    assert load_decoder(tmp_path / "elsewhere") is None


def decoder_z(decoder):
    from noisyarl.attacks.reconstruction import decoder_z_shape

    channels = decoder_z_shape(decoder)[0]
    return (channels, 5, 5)


@pytest.fixture(scope="module")
def upper_bound_run(tiny_celeba_root, tmp_path_factory):
    """A one-epoch RN18 upper bound on the same faces and tasks as ``tiny_run_dir``."""
    from noisyarl.config import config_from_dict
    from noisyarl.runners.experiment import run_experiment

    config = config_from_dict({
        "name": "tiny-upper-bound",
        "data": {"dataset": "celeba", "root": str(tiny_celeba_root), "image_size": 40},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "upper_bound"},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        # the run itself skips its leakage attack; the build trains the same attacker (a raw-image
        # ResNet18, these settings) as its private-label classifier
        "attacks": {"leakage": {"enabled": False, "epochs": 2, "batch_size": 16},
                    "reconstruction": {"enabled": False}},
    })
    run_dir = tmp_path_factory.mktemp("upper-bound") / "run"
    run_experiment(config, run_dir)
    return run_dir


@pytest.mark.slow
def test_build_picks_correctly_classified_balanced_images(upper_bound_run, tiny_run_dir,
                                                          tmp_path):
    # a copy of the noisy run without its saved decoder: the build retrains it
    old_run = tmp_path / "old-run"
    shutil.copytree(tiny_run_dir, old_run)
    (old_run / DECODER_FILE).unlink()
    manifest_path = build_study([upper_bound_run, tiny_run_dir, old_run], tmp_path / "study",
                                n=4, seed=1, participants=5, progress=False)
    manifest = load_study(manifest_path.parent)
    assert manifest["question"]["text"] == "Is this person male?"
    assert manifest["methods"] == ["noisy_arl K=2 σ=0.5 [run]", "noisy_arl K=2 σ=0.5 [old-run]"]
    assert len(manifest["items"]) == 8 and len({i["id"] for i in manifest["items"]}) == 8
    labels = [item["label"] for item in manifest["items"] if item["row"] < 4][:4]
    assert sorted(labels) == [0, 0, 1, 1]  # balanced over Male / not Male
    for item in manifest["items"]:
        image = manifest_path.parent / "images" / f"{item['id']}.png"
        assert image.read_bytes()[:4] == b"\x89PNG"
        assert item["method"] not in image.name
    assert len((manifest_path.parent / "participant_codes.txt").read_text().split()) == 5
    assert (manifest_path.parent / "overview.png").is_file()
    with pytest.raises(FileExistsError):
        build_study([upper_bound_run, tiny_run_dir], manifest_path.parent, n=4)


def test_build_refuses_runs_it_cannot_use(upper_bound_run, tiny_run_dir, tmp_path, capsys):
    with pytest.raises(ConfigError, match="exactly one upper_bound run"):
        build_study([tiny_run_dir], tmp_path / "s")
    with pytest.raises(ConfigError, match="at least one defended run"):
        build_study([upper_bound_run], tmp_path / "s")
    assert main(["study", "build", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["study", "results", str(tmp_path / "missing")]) == 2
    assert "not a study folder" in capsys.readouterr().err
