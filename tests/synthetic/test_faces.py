"""The procedural face generator: formats, determinism, label model and ground truth."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from noisyarl.evaluation.metrics import cramers_v
from noisyarl.synthetic.faces import (
    CELEBA_ATTRIBUTE_RATES,
    CELEBA_ATTRIBUTES,
    DRAWN_ATTRIBUTES,
    FAIRFACE_AGE_BINS,
    FAIRFACE_RACES,
    LANDMARK_NAMES,
    UNDRAWN_ATTRIBUTES,
    SynthConfig,
    conditional_rates_for_phi,
    generate_faces,
    plan_faces,
    synthesize,
    write_celeba,
    write_fairface,
)

WIDTH = 48
CELEBA_HEIGHT = round(WIDTH * 218 / 178)  # 59


def _file_digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def celeba_config() -> SynthConfig:
    return SynthConfig(num_images=200, image_size=WIDTH, seed=21)


@pytest.fixture(scope="module")
def celeba_faces(celeba_config):
    return generate_faces(celeba_config, "celeba")


@pytest.fixture(scope="module")
def celeba_root(tmp_path_factory, celeba_config) -> Path:
    root = tmp_path_factory.mktemp("synth-celeba")
    write_celeba(root, celeba_config)
    return root


def test_attribute_names_follow_celeba_order():
    assert len(CELEBA_ATTRIBUTES) == 40 == len(set(CELEBA_ATTRIBUTES))
    assert CELEBA_ATTRIBUTES[0] == "5_o_Clock_Shadow"
    assert CELEBA_ATTRIBUTES[20] == "Male" and CELEBA_ATTRIBUTES[31] == "Smiling"
    assert CELEBA_ATTRIBUTES[-1] == "Young"
    assert set(DRAWN_ATTRIBUTES) | set(UNDRAWN_ATTRIBUTES) == set(CELEBA_ATTRIBUTES)
    assert not set(DRAWN_ATTRIBUTES) & set(UNDRAWN_ATTRIBUTES)
    for name in ("Male", "Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Young"):
        assert name in DRAWN_ATTRIBUTES
    assert set(CELEBA_ATTRIBUTE_RATES) == set(CELEBA_ATTRIBUTES)


def test_shapes_and_dtypes(celeba_faces):
    n = 200
    assert celeba_faces.images.shape == (n, CELEBA_HEIGHT, WIDTH, 3)
    assert celeba_faces.images.dtype == np.uint8
    assert celeba_faces.attributes.shape == (n, 40) and celeba_faces.attributes.dtype == np.int8
    assert set(np.unique(celeba_faces.attributes)) <= {0, 1}
    for name, shape in (
        ("landmarks", (n, 10)),
        ("identity", (n,)),
        ("age_bin", (n,)),
        ("race", (n,)),
        ("bbox", (n, 4)),
        ("partition", (n,)),
    ):
        array = getattr(celeba_faces, name)
        assert array.shape == shape and array.dtype == np.int64, name
    assert celeba_faces.identity.min() >= 1
    assert 0 <= celeba_faces.age_bin.min() and celeba_faces.age_bin.max() < 9
    assert 0 <= celeba_faces.race.min() and celeba_faces.race.max() < 7


def test_fairface_layout_is_square():
    faces = generate_faces(SynthConfig(num_images=6, image_size=40, seed=1), "fairface")
    assert faces.images.shape == (6, 40, 40, 3)


def test_same_seed_gives_identical_arrays_whatever_the_worker_count():
    config = SynthConfig(num_images=24, image_size=40, seed=5, workers=1)
    first = generate_faces(config)
    second = generate_faces(SynthConfig(num_images=24, image_size=40, seed=5, workers=2))
    for name in (
        "images",
        "attributes",
        "landmarks",
        "identity",
        "age_bin",
        "race",
        "bbox",
        "partition",
    ):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name), err_msg=name)


def test_different_seeds_differ():
    first = generate_faces(SynthConfig(num_images=24, image_size=40, seed=5))
    second = generate_faces(SynthConfig(num_images=24, image_size=40, seed=6))
    assert not np.array_equal(first.images, second.images)
    assert not np.array_equal(first.attributes, second.attributes)


def test_written_files_are_byte_identical_for_a_seed(tmp_path, celeba_root, celeba_config):
    write_celeba(tmp_path, celeba_config)
    first, second = _file_digests(celeba_root / "celeba"), _file_digests(tmp_path / "celeba")
    assert len(first) == 200 + 5
    assert first == second


def test_in_memory_images_equal_decoded_files(celeba_root, celeba_faces):
    for index in (0, 57, 199):
        path = celeba_root / "celeba" / "img_align_celeba" / f"{index + 1:06d}.jpg"
        with Image.open(path) as image:
            assert image.format == "JPEG"
            np.testing.assert_array_equal(
                np.asarray(image.convert("RGB")), celeba_faces.images[index]
            )


def test_torchvision_stock_parser_reads_the_celeba_files(monkeypatch, celeba_root, celeba_faces):
    # The stock class md5-checks the real files; bypass only that check.
    monkeypatch.setattr(torchvision.datasets.CelebA, "_check_integrity", lambda self: True)
    target_type = ["attr", "identity", "bbox", "landmarks"]
    dataset = torchvision.datasets.CelebA(str(celeba_root), split="all", target_type=target_type)
    assert len(dataset) == 200
    assert tuple(dataset.attr_names) == CELEBA_ATTRIBUTES
    np.testing.assert_array_equal(dataset.attr.numpy(), celeba_faces.attributes)
    np.testing.assert_array_equal(dataset.landmarks_align.numpy(), celeba_faces.landmarks)
    np.testing.assert_array_equal(dataset.identity[:, 0].numpy(), celeba_faces.identity)
    np.testing.assert_array_equal(dataset.bbox.numpy(), celeba_faces.bbox)
    image, (attr, identity, _, landmarks) = dataset[3]
    assert image.size == (WIDTH, CELEBA_HEIGHT)
    assert torch.equal(attr, torch.from_numpy(celeba_faces.attributes[3]).long())
    assert int(identity) == celeba_faces.identity[3]
    assert landmarks.tolist() == celeba_faces.landmarks[3].tolist()

    sizes = {}
    for code, split in enumerate(("train", "valid", "test")):
        part = torchvision.datasets.CelebA(str(celeba_root), split=split, target_type="identity")
        sizes[split] = len(part)
        expected = np.flatnonzero(celeba_faces.partition == code)
        assert part.filename == [f"{i + 1:06d}.jpg" for i in expected]
    assert sum(sizes.values()) == 200
    assert abs(sizes["train"] / 200 - 0.8) < 0.03
    assert abs(sizes["valid"] / 200 - 0.1) < 0.03 and abs(sizes["test"] / 200 - 0.1) < 0.03


def test_celeba_text_files_have_the_real_headers(celeba_root):
    folder = celeba_root / "celeba"
    attr_lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    assert attr_lines[0] == "200"
    assert attr_lines[1].split() == list(CELEBA_ATTRIBUTES)
    first_row = attr_lines[2].split()
    assert first_row[0] == "000001.jpg" and set(first_row[1:]) <= {"-1", "1"}
    assert len(first_row) == 41
    marks = (folder / "list_landmarks_align_celeba.txt").read_text().splitlines()
    assert marks[1].split() == list(LANDMARK_NAMES)
    bbox = (folder / "list_bbox_celeba.txt").read_text().splitlines()
    assert bbox[1].split() == ["image_id", "x_1", "y_1", "width", "height"]
    partition = (folder / "list_eval_partition.txt").read_text().splitlines()
    assert partition[0] == "000001.jpg 0" and partition[-1].split()[0] == "000200.jpg"
    assert (folder / "identity_CelebA.txt").read_text().splitlines()[0].startswith("000001.jpg ")


def test_celeba_splits_are_identity_disjoint_and_ordered(celeba_faces):
    partition = celeba_faces.partition
    assert np.all(np.diff(partition) >= 0)  # train, then valid, then test (file order)
    identities = [set(celeba_faces.identity[partition == split]) for split in range(3)]
    assert not identities[0] & identities[1]
    assert not identities[0] & identities[2]
    assert not identities[1] & identities[2]


def test_fairface_files_are_well_formed(tmp_path):
    config = SynthConfig(num_images=100, image_size=40, seed=8)
    folder = write_fairface(tmp_path, config)
    faces = generate_faces(config, "fairface")
    assert folder == tmp_path / "fairface"
    rows = {}
    for split in ("train", "val"):
        with open(folder / f"fairface_label_{split}.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            assert reader.fieldnames == ["file", "age", "gender", "race", "service_test"]
            rows[split] = list(reader)
        for k, row in enumerate(rows[split], start=1):
            assert row["file"] == f"{split}/{k}.jpg"
            assert row["age"] in FAIRFACE_AGE_BINS
            assert row["gender"] in ("Male", "Female")
            assert row["race"] in FAIRFACE_RACES
            assert row["service_test"] in ("True", "False")
            with Image.open(folder / row["file"]) as image:
                assert image.size == (40, 40)
    assert abs(len(rows["train"]) / 100 - 0.88) < 0.05
    all_rows = rows["train"] + rows["val"]
    assert [FAIRFACE_AGE_BINS.index(r["age"]) for r in all_rows] == faces.age_bin.tolist()
    assert [FAIRFACE_RACES.index(r["race"]) for r in all_rows] == faces.race.tolist()
    assert [r["gender"] == "Male" for r in all_rows] == faces.attribute("Male").astype(
        bool
    ).tolist()


def test_synthesize_dispatches_on_format(tmp_path):
    folder = synthesize(tmp_path, "fairface", num_images=5, image_size=32, seed=0, progress=False)
    assert (folder / "fairface_label_train.csv").is_file()
    folder = synthesize(tmp_path, "celeba", num_images=5, image_size=32, seed=0, progress=False)
    assert len(list((folder / "img_align_celeba").glob("*.jpg"))) == 5
    with pytest.raises(ValueError, match="format"):
        synthesize(tmp_path, "cifar", num_images=5, image_size=32, seed=0)  # type: ignore[arg-type]


def test_cramers_v_targets_are_reached_on_5000_samples():
    plan = plan_faces(SynthConfig(num_images=5000, seed=0))
    column = {name: plan.attributes[:, k] for k, name in enumerate(CELEBA_ATTRIBUTES)}
    assert abs(cramers_v(column["Mouth_Slightly_Open"], column["Smiling"]) - 0.53) < 0.05
    assert abs(cramers_v(column["Male"], column["Smiling"]) - 0.14) < 0.05
    # Directions: mouth open goes with smiling; men smile less.
    smiling = column["Smiling"].astype(bool)
    assert (
        column["Mouth_Slightly_Open"][smiling].mean()
        > column["Mouth_Slightly_Open"][~smiling].mean()
    )
    male = column["Male"].astype(bool)
    assert column["Smiling"][male].mean() < column["Smiling"][~male].mean()


@pytest.mark.parametrize(("mouth_v", "male_v"), [(0.0, 0.4), (0.8, 0.0)])
def test_cramers_v_targets_are_configurable(mouth_v, male_v):
    config = SynthConfig(
        num_images=5000, seed=2, mouth_open_smiling_v=mouth_v, male_smiling_v=male_v
    )
    faces = plan_faces(config)
    attributes = faces.attributes
    smiling = attributes[:, CELEBA_ATTRIBUTES.index("Smiling")]
    mouth = attributes[:, CELEBA_ATTRIBUTES.index("Mouth_Slightly_Open")]
    male = attributes[:, CELEBA_ATTRIBUTES.index("Male")]
    assert abs(cramers_v(mouth, smiling) - mouth_v) < 0.05
    assert abs(cramers_v(male, smiling) - male_v) < 0.05


def test_undrawn_attributes_are_independent_draws_at_celeba_rates():
    plan = plan_faces(SynthConfig(num_images=5000, seed=3))
    male = plan.attributes[:, CELEBA_ATTRIBUTES.index("Male")]
    for name in UNDRAWN_ATTRIBUTES:
        values = plan.attributes[:, CELEBA_ATTRIBUTES.index(name)]
        assert abs(values.mean() - CELEBA_ATTRIBUTE_RATES[name]) < 0.03, name
        assert cramers_v(values, male) < 0.05, name
        assert cramers_v(values, plan.race) < 0.08, name


def test_young_is_derived_from_the_age_bin(celeba_faces):
    young = celeba_faces.attribute("Young")
    np.testing.assert_array_equal(young, (celeba_faces.age_bin <= 3).astype(np.int8))


def test_identity_keeps_its_face_shape():
    config = SynthConfig(num_images=400, image_size=32, seed=4, num_identities=60)
    plan = plan_faces(config)
    assert len(np.unique(plan.identity)) == 60
    male = plan.attributes[:, CELEBA_ATTRIBUTES.index("Male")]
    shape_fields = (
        "skin",
        "face_width",
        "jaw_exponent",
        "eye_spacing",
        "nose_width",
        "hair_color",
        "race",
        "male",
    )
    for person in np.unique(plan.identity):
        rows = np.flatnonzero(plan.identity == person)
        assert len(set(plan.race[rows])) == 1
        assert len(set(male[rows])) == 1
        for field_name in shape_fields:
            assert len({getattr(plan.specs[i], field_name) for i in rows}) == 1, field_name
        # Age moves by at most one bin around the identity's base age.
        assert np.ptp(plan.age_bin[rows]) <= 2


def test_landmarks_lie_inside_the_image_in_face_order(celeba_faces):
    marks = celeba_faces.landmarks
    xs, ys = marks[:, 0::2], marks[:, 1::2]
    assert xs.min() >= 0 and xs.max() < WIDTH
    assert ys.min() >= 0 and ys.max() < CELEBA_HEIGHT
    lefteye_x, lefteye_y, righteye_x, righteye_y, nose_x, nose_y = marks[:, :6].T
    leftmouth_x, leftmouth_y, rightmouth_x, rightmouth_y = marks[:, 6:].T
    assert np.all(lefteye_x < righteye_x)
    assert np.all(leftmouth_x < rightmouth_x)
    assert np.all(np.maximum(lefteye_y, righteye_y) < nose_y)
    assert np.all(nose_y < np.maximum(leftmouth_y, rightmouth_y))
    x, y, w, h = celeba_faces.bbox.T
    assert np.all((x >= 0) & (y >= 0) & (x + w <= WIDTH) & (y + h <= CELEBA_HEIGHT))
    assert np.all((lefteye_x >= x) & (righteye_x < x + w) & (lefteye_y >= y))


def test_eye_landmarks_sit_on_the_drawn_pupils():
    config = SynthConfig(num_images=30, image_size=178, seed=9, nuisance=0.0, eyeglasses_rate=0.01)
    faces = generate_faces(config)
    checked = 0
    for image, marks, glasses in zip(
        faces.images, faces.landmarks, faces.attribute("Eyeglasses"), strict=True
    ):
        if glasses:
            continue
        for x, y in (marks[0:2], marks[2:4]):
            pupil = image[y, x].astype(int).sum()
            skin_below = image[y + 12, x].astype(int).sum()
            assert pupil < 150 and pupil < skin_below
            checked += 1
    assert checked >= 40


def test_adding_glasses_changes_only_the_eye_region():
    # Same seed, only the glasses rate differs: pose, lighting and noise stay the same, so the
    # faces that gain glasses change around the eyes and hardly anywhere else.
    size = 64
    without = generate_faces(
        SynthConfig(num_images=30, image_size=size, seed=3, eyeglasses_rate=0.01)
    )
    with_glasses = generate_faces(
        SynthConfig(num_images=30, image_size=size, seed=3, eyeglasses_rate=0.99)
    )
    np.testing.assert_array_equal(without.landmarks, with_glasses.landmarks)
    gained = (with_glasses.attribute("Eyeglasses") == 1) & (without.attribute("Eyeglasses") == 0)
    assert gained.sum() >= 20
    for index in np.flatnonzero(gained):
        difference = np.abs(with_glasses.images[index].astype(int) - without.images[index])
        eye_y = without.landmarks[index, [1, 3]].mean()
        eye_rows = difference[int(eye_y) - 5 : int(eye_y) + 6]
        far_rows = difference[int(eye_y) + 24 :]
        assert (eye_rows.sum(axis=2) > 60).sum() >= 30  # frames: dozens of changed pixels
        assert far_rows.mean() < 1.0


@given(
    rate_a=st.floats(0.05, 0.95),
    rate_b=st.floats(0.05, 0.95),
    fraction=st.floats(0.0, 1.0),
)
def test_conditional_rates_reproduce_phi(rate_a, rate_b, fraction):
    spread = np.sqrt(rate_a * (1 - rate_a) * rate_b * (1 - rate_b))
    lowest = (max(0.0, rate_a + rate_b - 1) - rate_a * rate_b) / spread
    highest = (min(rate_a, rate_b) - rate_a * rate_b) / spread
    phi = lowest + fraction * (highest - lowest)
    given_a, given_not_a = conditional_rates_for_phi(rate_a, rate_b, phi)
    assert 0.0 <= given_a <= 1.0 and 0.0 <= given_not_a <= 1.0
    both = rate_a * given_a
    assert rate_a * given_a + (1 - rate_a) * given_not_a == pytest.approx(rate_b, abs=1e-9)
    assert (both - rate_a * rate_b) / spread == pytest.approx(phi, abs=1e-6)


@given(rate_a=st.floats(0.05, 0.95), rate_b=st.floats(0.05, 0.95))
def test_unreachable_phi_is_rejected(rate_a, rate_b):
    spread = np.sqrt(rate_a * (1 - rate_a) * rate_b * (1 - rate_b))
    highest = (min(rate_a, rate_b) - rate_a * rate_b) / spread
    with pytest.raises(ValueError, match="out of reach"):
        conditional_rates_for_phi(rate_a, rate_b, highest + 0.05)


@pytest.mark.parametrize(
    "overrides",
    [
        {"num_images": 0},
        {"image_size": 16},
        {"male_smiling_v": 1.5},
        {"smiling_rate": 1.0},
        {"race_probs": (0.5, 0.5)},
        {"jpeg_quality": (90, 80)},
        {"nuisance": -1.0},
        {"num_identities": 0},
    ],
)
def test_invalid_config_is_rejected(overrides):
    with pytest.raises(ValueError):
        SynthConfig(**overrides)


def test_unreachable_association_is_reported():
    config = SynthConfig(num_images=10, mouth_open_smiling_v=0.99, mouth_open_rate=0.1)
    with pytest.raises(ValueError, match="out of reach"):
        plan_faces(config)


def test_split_fractions_size_a_test_split_of_1000_out_of_4000():
    plan = plan_faces(SynthConfig(num_images=4000, seed=0, split_fractions=(0.6, 0.15, 0.25)))
    counts = np.bincount(plan.partition, minlength=3)
    assert abs(counts[2] - 1000) <= 8 and abs(counts[0] - 2400) <= 8  # whole identities move
    test_people = set(plan.identity[plan.partition == 2])
    assert not test_people & set(plan.identity[plan.partition == 0])


@pytest.mark.parametrize("fractions", [(0.5, 0.5, 0.5), (0.9, 0.0, 0.1), (1.0,)])
def test_bad_split_fractions_are_refused(fractions):
    with pytest.raises(ValueError, match="split_fractions"):
        SynthConfig(split_fractions=fractions)


def test_split_fractions_must_match_the_layout():
    with pytest.raises(ValueError, match="fairface has 2 splits"):
        plan_faces(SynthConfig(num_images=50, split_fractions=(0.6, 0.2, 0.2)), "fairface")
