"""Procedural face generator that writes the exact on-disk formats of CelebA and FairFace.

The real datasets cannot be downloaded here, so the project draws its own faces (PIL + numpy)
and writes them the way the real datasets are laid out, so that the real loaders (torchvision's
stock ``CelebA`` parser included) read them unchanged.

Labels that carry visual signal (``DRAWN_ATTRIBUTES`` plus age and race):

- ``Male``: hair length and shape, jaw width and squareness, face width, brow thickness, facial
  hair (men only), lipstick (women only), eyeliner thickness, neck width.
- ``Smiling``: mouth corners raised, mouth wider, eyes narrowed, cheek folds.
- ``Mouth_Slightly_Open``: a dark gap between the lips (with teeth).
- ``Eyeglasses``: round or rectangular frames, bridge and temple arms, sometimes dark lenses.
- age (9 FairFace bins; ``Young`` = age bin <= 3, i.e. under 30): head proportions of children
  (large forehead and eyes, small nose and chin), wrinkles, eye bags and thinner lips with age,
  gray hair and baldness for older people.
- race (7 FairFace groups): skin tone plus group-typical eye openness, nose width, lip thickness,
  hair colour, curly hair and iris colour. Groups overlap; the lighting makes colour ambiguous.
- ``5_o_Clock_Shadow`` (stubble), ``Mustache``, ``Goatee``, ``No_Beard`` (0 for a goatee or a
  full beard), ``Black_Hair``, ``Brown_Hair``, ``Blond_Hair``, ``Gray_Hair`` (red hair sets
  none of them), ``Bald``, ``Bangs``, ``Wearing_Lipstick``. Their rates follow from the
  gender/race/age mixture and differ from CelebA's (e.g. Black_Hair is about 0.6, not 0.24).

The other 24 CelebA attributes (``UNDRAWN_ATTRIBUTES``: Arched_Eyebrows, Attractive,
Bags_Under_Eyes, Big_Lips, Big_Nose, Blurry, Bushy_Eyebrows, Chubby, Double_Chin, Heavy_Makeup,
High_Cheekbones, Narrow_Eyes, Oval_Face, Pale_Skin, Pointy_Nose, Receding_Hairline, Rosy_Cheeks,
Sideburns, Straight_Hair, Wavy_Hair, Wearing_Earrings, Wearing_Hat, Wearing_Necklace,
Wearing_Necktie) carry **no signal**: each is an independent Bernoulli draw at its approximate
CelebA rate, independent of the image and of every other label. A model cannot beat the
majority-class rate on them.

Joint distribution: each identity (``num_identities``, default ``num_images // 4``) keeps its
gender, race group, base age, skin tone, face shape (face width, jaw, eye spacing, ...), hair and
iris colour across its images; per image the age bin moves by one bin with probability 0.24,
and expression, glasses, facial hair and lipstick are drawn afresh. ``Smiling`` is drawn given
``Male``, and ``Mouth_Slightly_Open`` given ``Smiling``, with conditional rates solved from the
target Cramér's V (for two binary variables V = |phi|; see :func:`conditional_rates_for_phi`).
Directions: ``Mouth_Slightly_Open`` goes with ``Smiling`` (phi = +V) and men smile less
(phi = -V), a project decision since V has no sign.

Nuisances (scaled by ``SynthConfig.nuisance``): pose shift, scale, in-plane rotation and a small
yaw, background colour field, clothes colour, a linear lighting gradient, brightness, colour
cast, Gaussian pixel noise and the JPEG quality.

Determinism: labels come from RNGs seeded by ``(seed, stream)``; each image is drawn with its own
``numpy`` RNG seeded by ``(seed, index)``, so the output is byte-identical for a seed whatever the
number of worker processes. ``generate_faces`` returns the decoded JPEG bytes that the writers
write, so in-memory images equal decoded files.

Row order: CelebA rows are file order (row ``i`` is ``{i+1:06d}.jpg``) with train, then valid,
then test, as in the real files. FairFace rows are the train files ``train/1.jpg ...`` then the
val files ``val/1.jpg ...``. Splits are identity-disjoint. ``bbox`` is the face box in the
written image (the real CelebA box refers to the uncropped photos, which are not generated).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from noisyarl.data.celeba import CELEBA_ATTRIBUTES, LANDMARK_NAMES, TEXT_FILES
from noisyarl.data.fairface import FAIRFACE_AGE_BINS, FAIRFACE_RACES
from noisyarl.synthetic.draw import (
    FACIAL_HAIR_NONE,
    FULL_BEARD,
    GOATEE,
    LAYOUTS,
    MUSTACHE,
    STUBBLE,
    FaceSpec,
    RenderedFace,
    RenderJob,
    render_job,
)
from noisyarl.synthetic.workers import (
    balanced_chunksize,
    ordered_map,
    resolve_workers,
    with_progress,
)

Layout = Literal["celeba", "fairface"]

DRAWN_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses",
    "Goatee", "Gray_Hair", "Male", "Mouth_Slightly_Open", "Mustache", "No_Beard", "Smiling",
    "Wearing_Lipstick", "Young",
)  # fmt: skip

UNDRAWN_ATTRIBUTES: tuple[str, ...] = tuple(
    name for name in CELEBA_ATTRIBUTES if name not in DRAWN_ATTRIBUTES
)

AGE_BIN_EDGES_YEARS = (0, 3, 10, 20, 30, 40, 50, 60, 70, 85)
YOUNG_MAX_AGE_BIN = 3  # Young = age bin <= 3 (under 30)

# Approximate positive rates of the 40 attributes in CelebA; the undrawn ones use these.
CELEBA_ATTRIBUTE_RATES: dict[str, float] = {
    "5_o_Clock_Shadow": 0.111, "Arched_Eyebrows": 0.267, "Attractive": 0.513,
    "Bags_Under_Eyes": 0.205, "Bald": 0.022, "Bangs": 0.152, "Big_Lips": 0.241,
    "Big_Nose": 0.235, "Black_Hair": 0.239, "Blond_Hair": 0.148, "Blurry": 0.051,
    "Brown_Hair": 0.205, "Bushy_Eyebrows": 0.142, "Chubby": 0.058, "Double_Chin": 0.047,
    "Eyeglasses": 0.065, "Goatee": 0.063, "Gray_Hair": 0.042, "Heavy_Makeup": 0.387,
    "High_Cheekbones": 0.455, "Male": 0.417, "Mouth_Slightly_Open": 0.483, "Mustache": 0.042,
    "Narrow_Eyes": 0.115, "No_Beard": 0.835, "Oval_Face": 0.284, "Pale_Skin": 0.043,
    "Pointy_Nose": 0.277, "Receding_Hairline": 0.080, "Rosy_Cheeks": 0.066, "Sideburns": 0.057,
    "Smiling": 0.482, "Straight_Hair": 0.208, "Wavy_Hair": 0.320, "Wearing_Earrings": 0.189,
    "Wearing_Hat": 0.048, "Wearing_Lipstick": 0.472, "Wearing_Necklace": 0.123,
    "Wearing_Necktie": 0.073, "Young": 0.774,
}  # fmt: skip

# Age-bin shares: FairFace's published train shares; CelebA-like (mostly young adults,
# Young ~ 0.77).
FAIRFACE_AGE_BIN_PROBS = (0.019, 0.120, 0.105, 0.296, 0.222, 0.124, 0.072, 0.032, 0.010)
CELEBA_AGE_BIN_PROBS = (0.0, 0.01, 0.12, 0.72, 0.08, 0.04, 0.02, 0.008, 0.002)
# FairFace's race shares (in FAIRFACE_RACES order); used by both layouts.
FAIRFACE_RACE_PROBS = (0.142, 0.142, 0.141, 0.191, 0.106, 0.154, 0.124)
MALE_RATE = {"celeba": 0.42, "fairface": 0.53}
SPLIT_FRACTIONS = {"celeba": (0.8, 0.1, 0.1), "fairface": (0.88, 0.12)}

MOUTH_OPEN_SMILING_SIGN = 1.0
MALE_SMILING_SIGN = -1.0

_IDENTITY_STREAM, _TRAIT_STREAM, _IMAGE_STREAM, _SERVICE_STREAM = 1, 2, 3, 4
POOL_MIN_IMAGES = 400  # workers=None draws fewer faces than this in one process


@dataclass
class SynthConfig:
    """What to generate. Output depends on every field except ``workers``.

    num_images: number of faces. image_size: image width in px (>= 32); CelebA-format height is
    ``round(width * 218 / 178)``, FairFace-format images are square. seed: any int.
    num_identities: number of people (default ``max(1, num_images // 4)``).
    mouth_open_smiling_v / male_smiling_v: target Cramér's V between the pairs (see the module
    docstring for the directions). smiling_rate, mouth_open_rate, eyeglasses_rate: positive
    rates. male_rate: share of men (None: 0.42 for CelebA, 0.53 for FairFace).
    age_bin_probs: shares of the 9 age bins (None: CelebA-like or FairFace's, by layout).
    race_probs: shares of the 7 race groups (FairFace's by default).
    nuisance: strength of pose, lighting, background and noise variation (0 = none, 1 = default).
    jpeg_quality: inclusive (low, high) range of the per-image JPEG quality.
    workers: processes that draw images (None: 2, or 1 below 400 images or on a 1-CPU machine).
    split_fractions: shares of the images in each split, identity-disjoint (None: the layout's,
    :data:`SPLIT_FRACTIONS`; CelebA train/valid/test, FairFace train/val), e.g.
    ``(0.6, 0.15, 0.25)`` for a test split of 1,000 images out of 4,000.
    """

    num_images: int = 1000
    image_size: int = 178
    seed: int = 0
    num_identities: int | None = None
    mouth_open_smiling_v: float = 0.53
    male_smiling_v: float = 0.14
    smiling_rate: float = 0.48
    mouth_open_rate: float = 0.48
    eyeglasses_rate: float = 0.065
    male_rate: float | None = None
    age_bin_probs: tuple[float, ...] | None = None
    race_probs: tuple[float, ...] = FAIRFACE_RACE_PROBS
    nuisance: float = 1.0
    jpeg_quality: tuple[int, int] = (75, 95)
    workers: int | None = None
    split_fractions: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        if self.num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {self.num_images}")
        if self.image_size < 32:
            raise ValueError(f"image_size must be >= 32 px, got {self.image_size}")
        if self.num_identities is not None and self.num_identities < 1:
            raise ValueError(f"num_identities must be >= 1, got {self.num_identities}")
        for name in ("mouth_open_smiling_v", "male_smiling_v"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("smiling_rate", "mouth_open_rate", "eyeglasses_rate", "male_rate"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise ValueError(f"{name} must be in (0, 1), got {value}")
        _check_probs("race_probs", self.race_probs, len(FAIRFACE_RACES))
        if self.age_bin_probs is not None:
            _check_probs("age_bin_probs", self.age_bin_probs, len(FAIRFACE_AGE_BINS))
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"jpeg_quality must be 1 <= low <= high <= 100, got {low, high}")
        if self.nuisance < 0:
            raise ValueError(f"nuisance must be >= 0, got {self.nuisance}")
        if self.split_fractions is not None:
            _check_probs("split_fractions", self.split_fractions, len(self.split_fractions))
            if len(self.split_fractions) not in (2, 3) or min(self.split_fractions) <= 0:
                raise ValueError("split_fractions must be 2 (FairFace) or 3 (CelebA) shares > 0, "
                                 f"got {self.split_fractions}")

    def split_fractions_for(self, layout: Layout) -> tuple[float, ...]:
        """The split shares of ``layout``: :attr:`split_fractions`, else the layout's own."""
        fractions = self.split_fractions or SPLIT_FRACTIONS[layout]
        if len(fractions) != len(SPLIT_FRACTIONS[layout]):
            raise ValueError(f"split_fractions: {layout} has {len(SPLIT_FRACTIONS[layout])} "
                             f"splits, got {fractions}")
        return tuple(fractions)

    @property
    def identity_count(self) -> int:
        if self.num_identities is not None:
            return self.num_identities
        return max(1, self.num_images // 4)

    def male_rate_for(self, layout: Layout) -> float:
        return self.male_rate if self.male_rate is not None else MALE_RATE[layout]

    def age_bin_probs_for(self, layout: Layout) -> tuple[float, ...]:
        if self.age_bin_probs is not None:
            return self.age_bin_probs
        return CELEBA_AGE_BIN_PROBS if layout == "celeba" else FAIRFACE_AGE_BIN_PROBS

    def worker_count(self) -> int:
        """Drawing processes to use, >= 1 (:func:`noisyarl.synthetic.workers.resolve_workers`)."""
        return resolve_workers(self.workers, self.num_images, POOL_MIN_IMAGES)


def _check_probs(name: str, probs: tuple[float, ...], length: int) -> None:
    if len(probs) != length or min(probs) < 0 or abs(sum(probs) - 1.0) > 1e-6:
        raise ValueError(f"{name} must be {length} non-negative shares summing to 1, got {probs}")


@dataclass
class SynthFaces:
    """Generated faces and the ground truth of everything drawn (N faces, H x W px).

    images: uint8 [N, H, W, 3], the decoded JPEG files. attributes: int8 [N, 40] in {0, 1},
    columns in ``CELEBA_ATTRIBUTES`` order. landmarks: int64 [N, 10] px, in ``LANDMARK_NAMES``
    order ("left" = the point on the image's left side). identity: int64 [N], 1-based.
    age_bin: int64 [N], index into ``FAIRFACE_AGE_BINS``. race: int64 [N], index into
    ``FAIRFACE_RACES``. bbox: int64 [N, 4] (x, y, w, h) px of the face outline.
    partition: int64 [N], the split written to disk (CelebA: 0/1/2 = train/valid/test;
    FairFace: 0/1 = train/val).
    """

    images: np.ndarray
    attributes: np.ndarray
    landmarks: np.ndarray
    identity: np.ndarray
    age_bin: np.ndarray
    race: np.ndarray
    bbox: np.ndarray
    partition: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def attribute(self, name: str) -> np.ndarray:
        """The int8 [N] column of the CelebA attribute ``name``."""
        return self.attributes[:, CELEBA_ATTRIBUTES.index(name)]


# ---------------------------------------------------------------------------------------------
# Association between binary labels
# ---------------------------------------------------------------------------------------------


def conditional_rates_for_phi(rate_a: float, rate_b: float, phi: float) -> tuple[float, float]:
    """``(P(B=1 | A=1), P(B=1 | A=0))`` giving binary A, B the phi coefficient ``phi``.

    rate_a = P(A=1), rate_b = P(B=1), both in (0, 1). For a 2x2 table Cramér's V = |phi|.
    Raises ValueError when no joint distribution with these marginals reaches ``phi``.

    >>> conditional_rates_for_phi(0.5, 0.5, 0.0)
    (0.5, 0.5)
    >>> conditional_rates_for_phi(0.5, 0.5, 1.0)
    (1.0, 0.0)
    """
    if not (0.0 < rate_a < 1.0 and 0.0 < rate_b < 1.0):
        raise ValueError(f"rates must be in (0, 1), got {rate_a}, {rate_b}")
    spread = float(np.sqrt(rate_a * (1 - rate_a) * rate_b * (1 - rate_b)))
    both = rate_a * rate_b + phi * spread
    low, high = max(0.0, rate_a + rate_b - 1.0), min(rate_a, rate_b)
    if not low - 1e-9 <= both <= high + 1e-9:
        raise ValueError(
            f"phi={phi} is out of reach for rates {rate_a}, {rate_b}: feasible phi is "
            f"[{(low - rate_a * rate_b) / spread:.3f}, {(high - rate_a * rate_b) / spread:.3f}]"
        )
    both = min(max(both, low), high)
    given_a = both / rate_a
    given_not_a = (rate_b - both) / (1 - rate_a)
    return float(np.clip(given_a, 0.0, 1.0)), float(np.clip(given_not_a, 0.0, 1.0))


# ---------------------------------------------------------------------------------------------
# Sampling identities and labels
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RaceLook:
    """Group-typical traits of one race group (means; identities vary around them).

    skin: RGB. hair_probs: shares of black, brown, blond, red hair before graying.
    light_iris: share of blue/green eyes. curly: share of curly, voluminous hair.
    """

    skin: tuple[float, float, float]
    eye_openness: float
    nose_width: float
    lip_thickness: float
    hair_probs: tuple[float, float, float, float]
    curly: float
    light_iris: float


RACE_LOOKS = (
    RaceLook((236, 200, 166), 0.30, 0.15, 0.060, (0.88, 0.12, 0.0, 0.0), 0.03, 0.0),  # E Asian
    RaceLook((166, 116, 84), 0.47, 0.17, 0.072, (0.85, 0.15, 0.0, 0.0), 0.10, 0.02),  # Indian
    RaceLook((100, 68, 50), 0.46, 0.23, 0.100, (0.95, 0.05, 0.0, 0.0), 0.80, 0.0),  # Black
    RaceLook((242, 206, 190), 0.44, 0.13, 0.055, (0.15, 0.40, 0.35, 0.10), 0.08, 0.45),  # White
    RaceLook((212, 168, 134), 0.45, 0.16, 0.068, (0.70, 0.30, 0.0, 0.0), 0.25, 0.08),  # M East
    RaceLook((196, 146, 110), 0.42, 0.17, 0.075, (0.60, 0.36, 0.04, 0.0), 0.20, 0.05),  # Latino
    RaceLook((180, 134, 96), 0.36, 0.20, 0.082, (0.85, 0.15, 0.0, 0.0), 0.10, 0.0),  # SE Asian
)

HAIR_BLACK, HAIR_BROWN, HAIR_BLOND, HAIR_RED, HAIR_GRAY = range(5)
HAIR_RGB = np.array([(28, 24, 22), (96, 62, 38), (214, 182, 120), (150, 68, 36), (172, 170, 166)])
HAIR_ATTRIBUTE = {
    HAIR_BLACK: "Black_Hair",
    HAIR_BROWN: "Brown_Hair",
    HAIR_BLOND: "Blond_Hair",
    HAIR_GRAY: "Gray_Hair",
}
GRAY_HAIR_PROB_BY_AGE_BIN = np.array([0, 0, 0, 0, 0.03, 0.15, 0.5, 0.8, 0.95])
BALD_PROB_BY_AGE_BIN = np.array([0, 0, 0, 0.01, 0.05, 0.12, 0.2, 0.28, 0.35])  # men only
IRIS_RGB = np.array([(78, 50, 32), (66, 108, 160), (92, 122, 80)])  # brown, blue, green
FACIAL_HAIR_PROBS = (0.5, 0.2, 0.06, 0.09, 0.15)  # none, stubble, mustache, goatee, full (men)
HAIR_LENGTH_PROBS = {True: (0.88, 0.09, 0.03), False: (0.1, 0.3, 0.6)}  # short/medium/long


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, stream])


def assign_identities(
    rng: np.random.Generator,
    num_images: int,
    num_identities: int,
    fractions: tuple[float, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Identity (1-based) and identity-disjoint split of each image, in file order.

    Every identity gets ``num_images // num_identities`` or one more image (when it has any).
    Identities are dealt to the splits in a random order until each split holds its fraction of
    the images; the images are then ordered by split. Returns (identity [N], partition [N]).
    """
    identity = rng.permutation(np.arange(num_images) % num_identities) + 1
    order_of_identities = rng.permutation(num_identities) + 1
    counts = np.bincount(identity, minlength=num_identities + 1)[order_of_identities]
    midpoints = (np.cumsum(counts) - counts / 2) / num_images
    split_of_identity = np.zeros(num_identities + 1, dtype=np.int64)
    split_of_identity[order_of_identities] = np.searchsorted(
        np.cumsum(fractions)[:-1], midpoints, side="right"
    )
    partition = split_of_identity[identity]
    order = np.argsort(partition, kind="stable")
    return identity[order].astype(np.int64), partition[order]


def sample_identity_traits(
    rng: np.random.Generator,
    count: int,
    male_rate: float,
    race_probs: tuple[float, ...],
    age_bin_probs: tuple[float, ...],
) -> dict[str, np.ndarray]:
    """Traits of ``count`` identities: arrays [count] (RGB colours [count, 3]), face units."""
    male = rng.random(count) < male_rate
    race = rng.choice(len(FAIRFACE_RACES), size=count, p=np.asarray(race_probs))
    base_age_bin = rng.choice(len(FAIRFACE_AGE_BINS), size=count, p=np.asarray(age_bin_probs))
    looks = [RACE_LOOKS[r] for r in race]
    skin = np.array([look.skin for look in looks])
    skin = skin + rng.normal(0, 10, (count, 1)) + rng.normal(0, 4, (count, 3))
    hair_category = np.array([rng.choice(4, p=look.hair_probs) for look in looks])
    graying = rng.random(count) < GRAY_HAIR_PROB_BY_AGE_BIN[base_age_bin]
    hair_category = np.where(graying, HAIR_GRAY, hair_category)
    whiteness = np.clip((base_age_bin - 6) * 20.0, 0, 60)[:, None] * graying[:, None]
    hair_rgb = HAIR_RGB[hair_category] + whiteness + rng.normal(0, 10, (count, 1))
    hair_rgb = hair_rgb + rng.normal(0, 4, (count, 3))
    light_iris = rng.random(count) < np.array([look.light_iris for look in looks])
    iris_rgb = IRIS_RGB[np.where(light_iris, rng.integers(1, 3, count), 0)]
    bald = male & (rng.random(count) < BALD_PROB_BY_AGE_BIN[base_age_bin])
    curly = rng.random(count) < np.array([look.curly for look in looks])
    hair_length = np.array([rng.choice(3, p=HAIR_LENGTH_PROBS[bool(m)]) for m in male])
    return {
        "male": male,
        "race": race,
        "base_age_bin": base_age_bin,
        "skin": np.clip(skin, 30, 250),
        "face_width": np.where(
            male, rng.normal(1.05, 0.035, count), rng.normal(0.96, 0.035, count)
        ),
        "jaw_exponent": np.where(male, rng.uniform(2.6, 3.3, count), rng.uniform(1.95, 2.4, count)),
        "eye_spacing": rng.uniform(0.38, 0.45, count),
        "eye_scale": rng.uniform(0.9, 1.1, count),
        "eye_openness": np.clip(
            np.array([look.eye_openness for look in looks]) + rng.normal(0, 0.035, count), 0.22, 0.6
        ),
        "iris_color": np.clip(iris_rgb + rng.normal(0, 8, (count, 3)), 0, 255),
        "nose_width": np.array([look.nose_width for look in looks]) + rng.normal(0, 0.012, count),
        "nose_length": rng.uniform(0.92, 1.08, count),
        "mouth_half_width": rng.uniform(0.3, 0.37, count) + 0.02 * male,
        "lip_thickness": np.array([look.lip_thickness for look in looks])
        + 0.012 * ~male
        + rng.normal(0, 0.008, count),
        "brow_thickness": np.where(
            male, rng.uniform(0.06, 0.085, count), rng.uniform(0.035, 0.055, count)
        ),
        "brow_arch": np.where(male, rng.uniform(0.0, 0.03, count), rng.uniform(0.03, 0.07, count)),
        "hair_category": hair_category,
        "hair_color": np.clip(hair_rgb, 0, 255),
        "hair_length": hair_length,
        "hair_volume": np.where(
            curly, rng.uniform(0.22, 0.4, count), rng.uniform(0.08, 0.2, count)
        ),
        "curly": curly,
        "bald": bald,
        "bangs": ~bald & (rng.random(count) < np.where(male, 0.08, 0.3)),
    }


def sample_image_labels(
    rng: np.random.Generator,
    config: SynthConfig,
    male: np.ndarray,
    base_age_bin: np.ndarray,
    male_rate: float,
) -> dict[str, np.ndarray]:
    """Per-image labels given each image's gender and base age bin (arrays [N]).

    Returns age_bin, age_years, smiling, mouth_open, eyeglasses, lipstick, facial_hair (codes of
    :mod:`noisyarl.synthetic.draw`) and undrawn (bool [N, len(UNDRAWN_ATTRIBUTES)]).
    """
    n = male.shape[0]
    age_shift = rng.choice([-1, 0, 1], size=n, p=[0.12, 0.76, 0.12])
    age_bin = np.clip(base_age_bin + age_shift, 0, len(FAIRFACE_AGE_BINS) - 1)
    edges = np.asarray(AGE_BIN_EDGES_YEARS, dtype=float)
    age_years = rng.uniform(edges[age_bin], edges[age_bin + 1])
    smile_if_male, smile_if_female = conditional_rates_for_phi(
        male_rate, config.smiling_rate, MALE_SMILING_SIGN * config.male_smiling_v
    )
    smiling = rng.random(n) < np.where(male, smile_if_male, smile_if_female)
    open_if_smiling, open_if_not = conditional_rates_for_phi(
        config.smiling_rate,
        config.mouth_open_rate,
        MOUTH_OPEN_SMILING_SIGN * config.mouth_open_smiling_v,
    )
    mouth_open = rng.random(n) < np.where(smiling, open_if_smiling, open_if_not)
    eyeglasses = rng.random(n) < config.eyeglasses_rate
    adult_enough = age_bin >= 2
    lipstick = ~male & adult_enough & (rng.random(n) < 0.78)
    facial_hair = rng.choice(5, size=n, p=FACIAL_HAIR_PROBS)
    facial_hair = np.where(male & adult_enough, facial_hair, FACIAL_HAIR_NONE)
    rates = np.array([CELEBA_ATTRIBUTE_RATES[name] for name in UNDRAWN_ATTRIBUTES])
    undrawn = rng.random((n, len(UNDRAWN_ATTRIBUTES))) < rates
    return {
        "age_bin": age_bin.astype(np.int64),
        "age_years": age_years,
        "smiling": smiling,
        "mouth_open": mouth_open,
        "eyeglasses": eyeglasses,
        "lipstick": lipstick,
        "facial_hair": facial_hair,
        "undrawn": undrawn,
    }


def attribute_matrix(traits: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> np.ndarray:
    """The int8 [N, 40] CelebA attribute table from per-image traits and labels."""
    facial_hair = labels["facial_hair"]
    hair = traits["hair_category"]
    columns: dict[str, np.ndarray] = {
        "5_o_Clock_Shadow": facial_hair == STUBBLE,
        "Bald": traits["bald"],
        "Bangs": traits["bangs"],
        "Eyeglasses": labels["eyeglasses"],
        "Goatee": np.isin(facial_hair, (GOATEE, FULL_BEARD)),
        "Male": traits["male"],
        "Mouth_Slightly_Open": labels["mouth_open"],
        "Mustache": np.isin(facial_hair, (MUSTACHE, FULL_BEARD)),
        "No_Beard": ~np.isin(facial_hair, (GOATEE, FULL_BEARD)),
        "Smiling": labels["smiling"],
        "Wearing_Lipstick": labels["lipstick"],
        "Young": labels["age_bin"] <= YOUNG_MAX_AGE_BIN,
    }
    for category, name in HAIR_ATTRIBUTE.items():
        columns[name] = hair == category
    for k, name in enumerate(UNDRAWN_ATTRIBUTES):
        columns[name] = labels["undrawn"][:, k]
    assert set(columns) == set(CELEBA_ATTRIBUTES)
    return np.stack([columns[name] for name in CELEBA_ATTRIBUTES], axis=1).astype(np.int8)


@dataclass
class FacePlan:
    """Labels and drawing specs of every image, before rendering (N images, file order)."""

    specs: list[FaceSpec]
    attributes: np.ndarray
    identity: np.ndarray
    age_bin: np.ndarray
    race: np.ndarray
    partition: np.ndarray


def _color(row: np.ndarray) -> tuple[int, int, int]:
    return (int(round(row[0])), int(round(row[1])), int(round(row[2])))


def _face_spec(traits: dict[str, np.ndarray], labels: dict[str, np.ndarray], i: int) -> FaceSpec:
    """The drawing spec of image ``i`` (traits already indexed per image)."""
    return FaceSpec(
        race=int(traits["race"][i]),
        male=bool(traits["male"][i]),
        skin=_color(traits["skin"][i]),
        face_width=float(traits["face_width"][i]),
        jaw_exponent=float(traits["jaw_exponent"][i]),
        eye_spacing=float(traits["eye_spacing"][i]),
        eye_scale=float(traits["eye_scale"][i]),
        eye_openness=float(traits["eye_openness"][i]),
        iris_color=_color(traits["iris_color"][i]),
        nose_width=float(traits["nose_width"][i]),
        nose_length=float(traits["nose_length"][i]),
        mouth_half_width=float(traits["mouth_half_width"][i]),
        lip_thickness=float(traits["lip_thickness"][i]),
        brow_thickness=float(traits["brow_thickness"][i]),
        brow_arch=float(traits["brow_arch"][i]),
        hair_color=_color(traits["hair_color"][i]),
        hair_length=int(traits["hair_length"][i]),
        hair_volume=float(traits["hair_volume"][i]),
        curly=bool(traits["curly"][i]),
        bald=bool(traits["bald"][i]),
        bangs=bool(traits["bangs"][i]),
        age_years=float(labels["age_years"][i]),
        smiling=bool(labels["smiling"][i]),
        mouth_open=bool(labels["mouth_open"][i]),
        eyeglasses=bool(labels["eyeglasses"][i]),
        facial_hair=int(labels["facial_hair"][i]),
        lipstick=bool(labels["lipstick"][i]),
    )


def plan_faces(config: SynthConfig, layout: Layout = "celeba") -> FacePlan:
    """Sample identities, splits and all labels of ``config`` (no drawing; fast)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {sorted(LAYOUTS)}, got {layout!r}")
    male_rate = config.male_rate_for(layout)
    identity, partition = assign_identities(
        _rng(config.seed, _IDENTITY_STREAM),
        config.num_images,
        config.identity_count,
        config.split_fractions_for(layout),
    )
    per_identity = sample_identity_traits(
        _rng(config.seed, _TRAIT_STREAM),
        config.identity_count + 1,
        male_rate,
        config.race_probs,
        config.age_bin_probs_for(layout),
    )  # row 0 is unused: identities are 1-based
    traits = {name: values[identity] for name, values in per_identity.items()}
    labels = sample_image_labels(
        _rng(config.seed, _IMAGE_STREAM),
        config,
        traits["male"],
        traits["base_age_bin"],
        male_rate,
    )
    specs = [_face_spec(traits, labels, i) for i in range(config.num_images)]
    return FacePlan(
        specs=specs,
        attributes=attribute_matrix(traits, labels),
        identity=identity,
        age_bin=labels["age_bin"],
        race=traits["race"].astype(np.int64),
        partition=partition.astype(np.int64),
    )


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def render_plan(
    plan: FacePlan,
    config: SynthConfig,
    layout: Layout,
    decode: bool = False,
    progress: bool = False,
) -> Iterator[RenderedFace]:
    """Render every face of ``plan`` in order (in a pool of ``config.worker_count()``)."""
    jobs = [
        RenderJob(
            spec,
            config.seed,
            index,
            config.image_size,
            layout,
            config.nuisance,
            config.jpeg_quality,
            decode,
        )
        for index, spec in enumerate(plan.specs)
    ]
    workers = config.worker_count()
    faces = ordered_map(render_job, jobs, workers, balanced_chunksize(len(jobs), workers))
    yield from with_progress(faces, len(jobs), f"drawing {layout} faces", progress)


def generate_faces(config: SynthConfig, layout: Layout = "celeba") -> SynthFaces:
    """Generate faces in memory: images equal the decoded files the writers would write."""
    plan = plan_faces(config, layout)
    images, landmarks, bboxes = [], [], []
    for face in render_plan(plan, config, layout, decode=True):
        images.append(face.pixels)
        landmarks.append(face.landmarks)
        bboxes.append(face.bbox)
    return SynthFaces(
        images=np.stack(images),
        attributes=plan.attributes,
        landmarks=np.asarray(landmarks, dtype=np.int64),
        identity=plan.identity,
        age_bin=plan.age_bin,
        race=plan.race,
        bbox=np.asarray(bboxes, dtype=np.int64),
        partition=plan.partition,
    )


# ---------------------------------------------------------------------------------------------
# Writers
# ---------------------------------------------------------------------------------------------


def celeba_file_name(index: int) -> str:
    """File name of row ``index`` (0-based) in the CelebA layout: ``000001.jpg`` for row 0."""
    return f"{index + 1:06d}.jpg"


def write_celeba(out_dir: str | Path, config: SynthConfig, progress: bool = False) -> Path:
    """Write ``OUT/celeba/`` in CelebA's layout and return that folder.

    Files: ``img_align_celeba/000001.jpg ...``, ``list_attr_celeba.txt`` (-1/1),
    ``list_eval_partition.txt`` (0/1/2), ``identity_CelebA.txt``, ``list_bbox_celeba.txt``
    and ``list_landmarks_align_celeba.txt``. Existing files of the same names are overwritten.
    """
    folder = Path(out_dir) / "celeba"
    image_dir = folder / "img_align_celeba"
    image_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_faces(config, "celeba")
    landmarks, bboxes = [], []
    for index, face in enumerate(render_plan(plan, config, "celeba", progress=progress)):
        (image_dir / celeba_file_name(index)).write_bytes(face.jpeg)
        landmarks.append(face.landmarks)
        bboxes.append(face.bbox)
    names = [celeba_file_name(i) for i in range(config.num_images)]
    _write_celeba_lists(folder, names, plan, np.asarray(landmarks), np.asarray(bboxes))
    return folder


def ensure_celeba(out_dir: str | Path, config: SynthConfig, progress: bool = False) -> Path:
    """``OUT/celeba/`` as :func:`write_celeba` makes it, generated only when absent.

    A folder holding every CelebA list file (the landmarks list is written last) is taken as
    it is, so a resumed demo or benchmark does not draw its faces again. Returns the folder.
    """
    folder = Path(out_dir) / "celeba"
    if all((folder / name).is_file() for name in TEXT_FILES):
        return folder
    if progress:
        print(f"generating {config.num_images} faces at {config.image_size}px -> {out_dir}")
    return write_celeba(out_dir, config, progress=progress)


def _write_celeba_lists(
    folder: Path, names: list[str], plan: FacePlan, landmarks: np.ndarray, bboxes: np.ndarray
) -> None:
    count = f"{len(names)}\n"
    signed = plan.attributes.astype(np.int64) * 2 - 1
    attr_rows = [
        name + "".join(f" {v:2d}" for v in row) for name, row in zip(names, signed, strict=True)
    ]
    _write_lines(folder / "list_attr_celeba.txt", [count + " ".join(CELEBA_ATTRIBUTES)] + attr_rows)
    _write_lines(
        folder / "list_eval_partition.txt",
        [f"{name} {split}" for name, split in zip(names, plan.partition, strict=True)],
    )
    _write_lines(
        folder / "identity_CelebA.txt",
        [f"{name} {person}" for name, person in zip(names, plan.identity, strict=True)],
    )
    bbox_rows = [
        name + "".join(f" {v:5d}" for v in row) for name, row in zip(names, bboxes, strict=True)
    ]
    _write_lines(
        folder / "list_bbox_celeba.txt", [count + "image_id x_1 y_1 width height"] + bbox_rows
    )
    mark_rows = [
        name + "".join(f" {v:5d}" for v in row) for name, row in zip(names, landmarks, strict=True)
    ]
    _write_lines(
        folder / "list_landmarks_align_celeba.txt", [count + " ".join(LANDMARK_NAMES)] + mark_rows
    )


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_text("\n".join(lines) + "\n", encoding="ascii", newline="\n")


FAIRFACE_SPLIT_NAMES = ("train", "val")
FAIRFACE_COLUMNS = ("file", "age", "gender", "race", "service_test")


def fairface_file_names(partition: np.ndarray) -> list[str]:
    """``train/1.jpg ...`` then ``val/1.jpg ...`` for rows with partition 0 / 1 (file order)."""
    counters = [0, 0]
    names = []
    for split in partition:
        counters[split] += 1
        names.append(f"{FAIRFACE_SPLIT_NAMES[split]}/{counters[split]}.jpg")
    return names


def write_fairface(out_dir: str | Path, config: SynthConfig, progress: bool = False) -> Path:
    """Write ``OUT/fairface/`` in FairFace's layout and return that folder.

    Files: ``train/1.jpg ...``, ``val/1.jpg ...`` (square images) and
    ``fairface_label_train.csv`` / ``fairface_label_val.csv`` with the columns
    ``file,age,gender,race,service_test``; ``service_test`` is a random flag (no signal).
    """
    folder = Path(out_dir) / "fairface"
    for split in FAIRFACE_SPLIT_NAMES:
        (folder / split).mkdir(parents=True, exist_ok=True)
    plan = plan_faces(config, "fairface")
    names = fairface_file_names(plan.partition)
    for name, face in zip(
        names, render_plan(plan, config, "fairface", progress=progress), strict=True
    ):
        (folder / name).write_bytes(face.jpeg)
    service_test = _rng(config.seed, _SERVICE_STREAM).random(config.num_images) < 0.5
    male = plan.attributes[:, CELEBA_ATTRIBUTES.index("Male")]
    for split_index, split in enumerate(FAIRFACE_SPLIT_NAMES):
        with open(folder / f"fairface_label_{split}.csv", "w", newline="", encoding="ascii") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(FAIRFACE_COLUMNS)
            for i in np.flatnonzero(plan.partition == split_index):
                writer.writerow(
                    [
                        names[i],
                        FAIRFACE_AGE_BINS[plan.age_bin[i]],
                        "Male" if male[i] else "Female",
                        FAIRFACE_RACES[plan.race[i]],
                        str(bool(service_test[i])),
                    ]
                )
    return folder


def synthesize(
    out_dir: str | Path,
    format: Layout,
    num_images: int,
    image_size: int,
    seed: int,
    progress: bool = True,
) -> Path:
    """Write ``num_images`` generated faces in ``format`` under ``out_dir``; return the folder."""
    config = SynthConfig(num_images=num_images, image_size=image_size, seed=seed)
    if format == "celeba":
        return write_celeba(out_dir, config, progress=progress)
    if format == "fairface":
        return write_fairface(out_dir, config, progress=progress)
    raise ValueError(f"format must be 'celeba' or 'fairface', got {format!r}")
