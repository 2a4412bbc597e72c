"""Procedural CIFAR-10 stand-in: 32 x 32 images of the ten CIFAR-10 classes, written in the
``cifar-10-batches-py`` layout that torchvision's parser (and :mod:`noisyarl.data.cifar`) reads.

CIFAR-10 cannot be downloaded here, so the paper's CIFAR-10 experiment (private label: the 10
classes; utility label: living vs non-living, docs/method.md §4) runs on images the project
draws itself (numpy + PIL only).

What is drawn: one object per image, built from polygons, ellipses and thick lines in *object
units* (the object spans about x in [-1, 1], y points down, it faces +x), over a scene.

- airplane: fuselage, swept wings, tail fin and stabiliser, engine; side view or seen from
  below (a cross); mostly white or grey, sometimes a coloured livery.
- automobile: low body with bonnet, a sedan / hatchback / SUV cabin with windows, two wheels,
  head and tail lights; saturated paint colours.
- truck: a tall cab with windscreen in front of a box, tanker or tipper body, a dark chassis and
  three wheels.
- ship: a hull with a raised bow and a waterline stripe, and either containers, a white
  superstructure with a funnel, or a mast with sails.
- bird: small body with a lighter breast, round head, beak and eye, tail; perched on a branch
  (folded wing, legs) or flying (raised wings).
- cat: sitting side view (pointed ears, curled tail, slit-pupil green/yellow/blue eyes,
  whiskers) or a close-up face; tabby stripes on half of them.
- deer: slim body, long thin legs, long neck, small head, large ears, white tail patch; antlers
  on half, fawn spots on some.
- dog: long body on four legs, head with a muzzle and black nose, floppy (sometimes pointed)
  ears, raised tail; or a close-up face with hanging ears; patches on some.
- frog: squat wide body, bulging eyes on top, folded hind legs, spots.
- horse: large body, thick legs with hooves, thick neck with a dark mane, long head, long
  tail; a white blaze and white socks on some.

Scenes (sky, water, road, grass, forest, indoor) depend on the class, as in the real photos,
but every scene is shared by several classes (e.g. road: automobile, truck, dog, horse; sky:
airplane, bird, ship), so the background alone does not give the class; see
``ObjectClass.scenes``. The ground line sits below the object's feet, wheels or waterline.

Nuisances (scaled by ``nuisance``; 0 = none, 1 = default): position (3 px s.d., so objects
may leave the frame a little), scale (20% s.d.), in-plane tilt, left/right facing, colour
jitter of every part, clutter (rocks, bushes, balls) behind the object and, on 30% of the
images, an occluder (post, branch, leaf) in front of it; then a Gaussian blur on half the
images, contrast, saturation, brightness, colour cast, a linear light gradient and Gaussian
pixel noise (s.d. 1-9 grey levels).

Classes share parts on purpose, so that telling them apart takes more than one cue: deer and
horses share coat colours (and deer without antlers have a horse-like outline), a quarter of
the trucks are two-wheeled pickups, a third of the standing dogs have pointed ears, cats and
dogs share fur colours and close-up faces.

What is not drawn: texture detail beyond a few strokes, perspective, several objects of a
class in one image, people, or any other CIFAR-10 photo statistics. Only the class and
``living`` carry signal; a model learns shapes and colours, not real photos, so numbers
measured here are not comparable with numbers on the real CIFAR-10.

Sources: the class list and order, the living / non-living split (docs/method.md §4), the
file layout and the default sizes (50,000 training and 10,000 test images) follow the
CIFAR-10 python release; every drawing and nuisance choice is the project's own.

Drawing happens on a canvas ``SUPERSAMPLE`` times larger than 32 px (anti-aliasing) that is
box-filtered down; lighting and noise are applied to the 32 x 32 pixels. Labels are balanced
in blocks: every 10 consecutive images hold each class once, in random order, so any prefix is
balanced to within one image per class.

Determinism: the labels come from an RNG seeded by ``(seed, LABEL_STREAM)`` and every image from
its own RNGs seeded by ``(seed, DRAW_STREAM, index)``, so the output is byte-identical for a
seed whatever the number of worker processes.

On-disk layout (:func:`write_cifar10`), as torchvision expects it::

    OUT/cifar-10-batches-py/data_batch_1 ... data_batch_5   the training images, split in 5
    OUT/cifar-10-batches-py/test_batch                      the test images
    OUT/cifar-10-batches-py/batches.meta                    label_names, num_cases_per_batch,
                                                            num_vis

Each batch is a pickled dict (protocol 4: the real files are Python-2 pickles, but protocol 2
would store Python-3 bytes as latin-1 text, 1.4x larger) with ``batch_label``,
``data`` (uint8 [N, 3072]: the 1024 red, then green, then blue values of an image, each plane
row-major), ``labels`` (list of N ints, index into ``label_names``) and ``filenames``.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from noisyarl.data.cifar import BASE_FOLDER, META_FILE, TEST_FILE, TRAIN_FILES
from noisyarl.synthetic.draw import Color, ellipse_points, mix, shade
from noisyarl.synthetic.workers import ordered_map, resolve_workers, with_progress

CLASS_NAMES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip  (CIFAR-10's label order)
IMAGE_SIZE = 32
SUPERSAMPLE = 4
CANVAS = IMAGE_SIZE * SUPERSAMPLE
VALUES_PER_IMAGE = 3 * IMAGE_SIZE * IMAGE_SIZE  # 3072, CIFAR's num_vis

LABEL_STREAM = 1
DRAW_STREAM = 2
CHUNK = 250  # images per worker task
POOL_MIN_IMAGES = 2000  # workers=None draws fewer images than this in one process
PICKLE_PROTOCOL = 4  # fixed, so files do not change with Python's default protocol

WHITE: Color = (245, 245, 245)
BLACK: Color = (25, 25, 28)
GLASS: tuple[Color, ...] = ((60, 75, 95), (140, 165, 190), (35, 40, 50))
TYRE: Color = (28, 28, 30)
HUB: Color = (150, 150, 155)

Points = Sequence[tuple[float, float]] | np.ndarray


# ---------------------------------------------------------------------------------------------
# Colours
# ---------------------------------------------------------------------------------------------


def jittered(color: Color, rng: np.random.Generator, amount: float = 14.0) -> Color:
    """``color`` plus independent Gaussian noise of s.d. ``amount`` per channel (0..255)."""
    values = np.clip(np.rint(np.asarray(color, dtype=float) + rng.normal(0.0, amount, 3)), 0, 255)
    red, green, blue = (int(v) for v in values)
    return (red, green, blue)


def pick(rng: np.random.Generator, options: Sequence[Color], amount: float = 14.0) -> Color:
    """One of ``options`` (uniformly), jittered."""
    return jittered(options[int(rng.integers(len(options)))], rng, amount)


def random_vivid(rng: np.random.Generator) -> Color:
    """A saturated colour of random hue (for paint, liveries, clutter)."""
    hue = rng.uniform(0.0, 1.0)
    channels = [0.5 + 0.5 * math.cos(2 * math.pi * (hue - k / 3)) for k in range(3)]
    low, high = rng.uniform(15, 60), rng.uniform(170, 240)
    red, green, blue = (int(low + (high - low) * c) for c in channels)
    return (red, green, blue)


# ---------------------------------------------------------------------------------------------
# Painter: object units -> canvas
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectPose:
    """Map from object units to output pixels: ``origin + unit * R(angle) @ (±x, y)``.

    origin: output-pixel position (pixel-centre convention) of the object-unit origin.
    unit: output pixels per object unit. angle: tilt in radians (clockwise on screen).
    mirrored: the object faces the image's left (x is negated before the rotation).
    """

    origin: tuple[float, float]
    unit: float
    angle: float
    mirrored: bool

    def to_canvas(self, points: Points) -> np.ndarray:
        """Canvas coordinates [K, 2] of object points [K, 2]."""
        points = np.asarray(points, dtype=float).reshape(-1, 2)
        x = -points[:, 0] if self.mirrored else points[:, 0]
        y = points[:, 1]
        c, s = math.cos(self.angle), math.sin(self.angle)
        px = self.origin[0] + self.unit * (c * x - s * y)
        py = self.origin[1] + self.unit * (s * x + c * y)
        return np.stack([px, py], axis=1) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2


class Painter:
    """Draws shapes given in object units onto the supersampled canvas."""

    def __init__(self, canvas: Image.Image, pose: ObjectPose) -> None:
        self.draw = ImageDraw.Draw(canvas)
        self.pose = pose

    def _xy(self, points: Points) -> list[tuple[float, float]]:
        return [(float(x), float(y)) for x, y in self.pose.to_canvas(points)]

    def polygon(self, points: Points, fill: Color) -> None:
        self.draw.polygon(self._xy(points), fill=fill)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: Color) -> None:
        self.polygon(ellipse_points(cx, cy, rx, ry, count=20), fill)

    def rect(self, x0: float, y0: float, x1: float, y1: float, fill: Color) -> None:
        self.polygon([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], fill)

    def line(self, points: Points, width_units: float, fill: Color) -> None:
        """A polyline ``width_units`` object units thick (at least one canvas pixel)."""
        width = max(1, round(width_units * self.pose.unit * SUPERSAMPLE))
        self.draw.line(self._xy(points), fill=fill, width=width, joint="curve")


def shrunk(points: Points, factor: float) -> np.ndarray:
    """``points`` [K, 2] scaled by ``factor`` about their mean (e.g. a window inside a cabin)."""
    points = np.asarray(points, dtype=float)
    centre = points.mean(axis=0)
    return centre + (points - centre) * factor


def wheel(p: Painter, x: float, y: float, radius: float) -> None:
    p.ellipse(x, y, radius, radius, TYRE)
    p.ellipse(x, y, radius * 0.45, radius * 0.45, HUB)


# ---------------------------------------------------------------------------------------------
# Vehicles (non-living)
# ---------------------------------------------------------------------------------------------

AIRCRAFT_PAINT: tuple[Color, ...] = ((236, 236, 240), (205, 208, 214), (175, 180, 188))


def draw_airplane(p: Painter, rng: np.random.Generator) -> None:
    """Side view (70%) or seen from below (30%); white/grey or (25%) a coloured livery."""
    body = random_vivid(rng) if rng.random() < 0.25 else pick(rng, AIRCRAFT_PAINT, 8.0)
    accent = random_vivid(rng)
    wing = shade(body, 0.82)
    if rng.random() < 0.3:
        p.polygon([(0.25, 0.0), (-0.2, -0.95), (-0.42, -0.95), (-0.25, 0.0),
                   (-0.42, 0.95), (-0.2, 0.95)], wing)  # fmt: skip
        p.polygon([(-0.72, 0.0), (-0.95, -0.35), (-1.05, -0.35), (-0.98, 0.0),
                   (-1.05, 0.35), (-0.95, 0.35)], wing)  # fmt: skip
        p.ellipse(0.0, 0.0, 1.0, 0.13, body)
        p.ellipse(-0.05, -0.45, 0.13, 0.06, shade(body, 0.6))
        p.ellipse(-0.05, 0.45, 0.13, 0.06, shade(body, 0.6))
        return
    p.polygon([(0.15, -0.02), (-0.15, -0.5), (-0.32, -0.5), (-0.2, -0.02)], shade(body, 0.7))
    p.polygon([(-0.68, -0.05), (-0.95, -0.5), (-1.05, -0.5), (-0.98, -0.02)], accent)
    p.ellipse(0.0, 0.0, 1.0, 0.14, body)
    if rng.random() < 0.5:
        p.line([(-0.85, 0.02), (0.75, 0.02)], 0.05, accent)
    p.ellipse(0.83, -0.05, 0.08, 0.04, GLASS[0])
    p.polygon([(0.22, 0.03), (-0.2, 0.78), (-0.42, 0.78), (-0.18, 0.04)], wing)
    p.ellipse(-0.02, 0.32, 0.15, 0.065, shade(body, 0.55))
    p.polygon([(-0.75, 0.0), (-1.0, 0.2), (-1.07, 0.2), (-0.95, 0.0)], wing)


CAR_CABINS = {
    "sedan": [(-0.58, -0.08), (-0.38, -0.44), (0.3, -0.44), (0.55, -0.06)],
    "hatchback": [(-0.96, -0.08), (-0.86, -0.44), (0.25, -0.44), (0.55, -0.06)],
    "suv": [(-0.98, -0.08), (-0.95, -0.62), (0.35, -0.62), (0.58, -0.1)],
}
CAR_PAINT: tuple[Color, ...] = ((190, 30, 35), (30, 60, 150), (235, 235, 235), (30, 30, 35),
                                (170, 172, 178), (230, 190, 40), (40, 110, 60))  # fmt: skip


def draw_automobile(p: Painter, rng: np.random.Generator) -> None:
    """A car: body, one of three cabins with windows, two wheels, lights."""
    paint = random_vivid(rng) if rng.random() < 0.3 else pick(rng, CAR_PAINT)
    cabin = CAR_CABINS[("sedan", "hatchback", "suv")[int(rng.integers(3))]]
    p.polygon(cabin, paint)
    p.polygon(shrunk(cabin, 0.78), pick(rng, GLASS, 10.0))
    pillar_x = float(np.mean([x for x, _ in cabin]))
    p.line([(pillar_x, -0.5), (pillar_x, -0.05)], 0.06, paint)
    p.polygon([(-1.0, -0.1), (0.55, -0.1), (1.0, -0.02), (1.02, 0.25), (-1.0, 0.25)], paint)
    p.line([(-0.95, 0.08), (0.95, 0.08)], 0.03, shade(paint, 0.7))
    p.ellipse(0.96, 0.03, 0.05, 0.04, (250, 240, 190))
    p.ellipse(-0.97, 0.02, 0.04, 0.04, (200, 30, 30))
    wheel(p, -0.6, 0.25, 0.2)
    wheel(p, 0.62, 0.25, 0.2)


CARGO_PAINT: tuple[Color, ...] = ((235, 235, 235), (190, 192, 196), (150, 152, 158))


def draw_truck(p: Painter, rng: np.random.Generator) -> None:
    """A truck: tall cab with windscreen and a box (45%), tanker (15%), tipper (15%) or open
    pickup bed (25%, two wheels: the truck closest to a car)."""
    cab = random_vivid(rng) if rng.random() < 0.5 else pick(rng, CAR_PAINT)
    cargo = cab if rng.random() < 0.3 else pick(rng, CARGO_PAINT)
    body = rng.random()
    if body < 0.45:
        p.rect(-1.0, -0.78, 0.4, 0.14, cargo)
        p.line([(-1.0, -0.78), (0.4, -0.78)], 0.04, shade(cargo, 0.75))
    elif body < 0.6:
        p.ellipse(-0.3, -0.28, 0.72, 0.34, pick(rng, CARGO_PAINT))
        p.line([(-0.9, -0.28), (0.3, -0.28)], 0.05, shade(cargo, 0.7))
    elif body < 0.75:
        p.polygon([(-1.0, -0.6), (0.38, -0.6), (0.3, 0.14), (-0.92, 0.14)], cargo)
    else:
        p.rect(-1.0, -0.22, 0.45, 0.14, cab)
        p.line([(-1.0, -0.22), (0.45, -0.22)], 0.04, shade(cab, 0.7))
    p.rect(-1.0, 0.1, 1.0, 0.24, (45, 45, 48))
    p.polygon([(0.45, 0.24), (0.45, -0.58), (0.8, -0.58), (1.0, -0.2), (1.0, 0.24)], cab)
    p.polygon([(0.6, -0.5), (0.78, -0.5), (0.93, -0.22), (0.6, -0.22)], pick(rng, GLASS, 10.0))
    p.ellipse(0.97, 0.06, 0.04, 0.05, (250, 240, 190))
    for x in (-0.6, 0.72) if body >= 0.75 else (-0.75, -0.4, 0.72):
        wheel(p, x, 0.27, 0.17)


HULL_PAINT: tuple[Color, ...] = ((30, 40, 70), (25, 25, 28), (120, 30, 30), (235, 235, 235),
                                 (120, 125, 130))  # fmt: skip


def draw_ship(p: Painter, rng: np.random.Generator) -> None:
    """A hull with a raised bow; containers, a white superstructure or sails on deck."""
    hull = pick(rng, HULL_PAINT)
    style = rng.random()
    if style < 0.35:
        for x in np.arange(-0.85, 0.35, 0.2):
            height = rng.uniform(0.15, 0.4)
            p.rect(float(x), -0.1 - height, float(x) + 0.18, -0.08, random_vivid(rng))
        p.rect(0.5, -0.55, 0.72, -0.08, WHITE)
    elif style < 0.75:
        p.rect(-0.6, -0.35, 0.45, -0.08, jittered(WHITE, rng, 6.0))
        p.rect(-0.4, -0.55, 0.2, -0.33, jittered(WHITE, rng, 6.0))
        p.line([(-0.55, -0.22), (0.4, -0.22)], 0.05, GLASS[2])
        p.rect(-0.2, -0.8, -0.02, -0.53, random_vivid(rng))
    else:
        p.line([(0.0, -0.1), (0.0, -1.0)], 0.04, (90, 70, 50))
        sail = jittered(WHITE, rng, 8.0)
        p.polygon([(0.04, -0.95), (0.04, -0.15), (0.6, -0.15)], sail)
        p.polygon([(-0.04, -0.85), (-0.04, -0.15), (-0.55, -0.15)], shade(sail, 0.9))
    p.polygon([(-1.0, -0.12), (1.1, -0.18), (0.85, 0.3), (-0.9, 0.3)], hull)
    p.polygon([(-0.93, 0.2), (0.9, 0.2), (0.85, 0.3), (-0.9, 0.3)], pick(rng, ((150, 35, 35),
                                                                               BLACK)))


# ---------------------------------------------------------------------------------------------
# Animals (living)
# ---------------------------------------------------------------------------------------------

BIRD_PLUMAGE: tuple[Color, ...] = ((120, 85, 55), (130, 130, 135), (50, 90, 170), (190, 40, 35),
                                   (225, 190, 40), (30, 30, 32), (230, 230, 225))  # fmt: skip
BEAKS: tuple[Color, ...] = ((235, 160, 40), (230, 200, 60), (40, 40, 40))


def draw_bird(p: Painter, rng: np.random.Generator) -> None:
    """A small bird perched on a branch (60%) or flying (wings raised)."""
    plumage = random_vivid(rng) if rng.random() < 0.2 else pick(rng, BIRD_PLUMAGE)
    breast = mix(plumage, pick(rng, (WHITE, (240, 200, 90), (220, 120, 60))), 0.55)
    wing = shade(plumage, 0.72)
    perched = rng.random() < 0.6
    if perched:
        p.line([(-1.2, 0.52), (1.2, 0.46)], 0.09, pick(rng, ((95, 70, 45), (70, 55, 40))))
        p.line([(-0.02, 0.28), (-0.04, 0.5)], 0.035, (60, 50, 40))
        p.line([(0.12, 0.28), (0.14, 0.5)], 0.035, (60, 50, 40))
    else:
        p.polygon([(0.05, -0.05), (-0.1, -0.85), (-0.4, -0.75), (-0.25, -0.02)], shade(wing, 0.85))
    p.polygon([(-0.3, 0.0), (-0.95, 0.1), (-0.88, 0.3), (-0.28, 0.16)], wing)
    p.ellipse(0.0, 0.05, 0.46, 0.28, plumage)
    p.ellipse(0.08, 0.14, 0.32, 0.15, breast)
    if perched:
        p.ellipse(-0.1, 0.0, 0.34, 0.15, wing)
    else:
        p.polygon([(0.15, 0.0), (0.05, -0.75), (-0.25, -0.7), (-0.2, 0.02)], wing)
    p.ellipse(0.42, -0.22, 0.2, 0.2, plumage)
    p.polygon([(0.58, -0.27), (0.84, -0.2), (0.58, -0.14)], pick(rng, BEAKS, 10.0))
    p.ellipse(0.48, -0.26, 0.045, 0.045, BLACK)


FUR: tuple[Color, ...] = ((210, 130, 60), (130, 130, 135), (35, 35, 38), (230, 226, 215),
                          (120, 88, 58), (215, 195, 155))  # fmt: skip
CAT_EYES: tuple[Color, ...] = ((120, 200, 80), (220, 200, 60), (210, 150, 50), (110, 160, 220))
PINK: Color = (225, 140, 150)


def _cat_eye(p: Painter, x: float, y: float, size: float, iris: Color) -> None:
    p.ellipse(x, y, size, size * 0.8, iris)
    p.ellipse(x, y, size * 0.28, size * 0.75, BLACK)


def draw_cat(p: Painter, rng: np.random.Generator) -> None:
    """A sitting cat seen from the side (50%) or a close-up face; tabby stripes on half."""
    fur = pick(rng, FUR)
    stripes = shade(fur, 0.6) if rng.random() < 0.5 else None
    iris = pick(rng, CAT_EYES, 12.0)
    if rng.random() < 0.5:
        _draw_cat_face(p, fur, stripes, iris)
        return
    p.line([(-0.5, 0.4), (-0.85, 0.15), (-0.85, -0.2), (-0.7, -0.45)], 0.11, shade(fur, 0.9))
    p.ellipse(-0.15, 0.22, 0.5, 0.34, fur)
    if stripes is not None:
        for x in (-0.4, -0.22, -0.04):
            p.line([(x, -0.05), (x + 0.06, 0.3)], 0.06, stripes)
    for x in (0.05, 0.22):
        p.line([(x, 0.3), (x + 0.02, 0.78)], 0.11, fur)
    p.polygon([(0.12, -0.38), (0.18, -0.75), (0.34, -0.5)], fur)
    p.polygon([(0.42, -0.52), (0.6, -0.77), (0.64, -0.4)], fur)
    p.polygon([(0.19, -0.45), (0.21, -0.63), (0.3, -0.5)], PINK)
    p.ellipse(0.38, -0.26, 0.3, 0.27, fur)
    _cat_eye(p, 0.3, -0.3, 0.07, iris)
    _cat_eye(p, 0.5, -0.3, 0.07, iris)
    p.polygon([(0.37, -0.18), (0.45, -0.18), (0.41, -0.13)], PINK)
    for dy in (-0.03, 0.03):
        p.line([(0.48, -0.14), (0.8, -0.14 + 3 * dy)], 0.015, (225, 225, 225))


def _draw_cat_face(p: Painter, fur: Color, stripes: Color | None, iris: Color) -> None:
    for side in (-1.0, 1.0):
        p.polygon([(side * 0.72, -0.2), (side * 0.7, -0.95), (side * 0.2, -0.55)], fur)
        p.polygon([(side * 0.62, -0.32), (side * 0.62, -0.75), (side * 0.32, -0.52)], PINK)
    p.ellipse(0.0, 0.05, 0.8, 0.68, fur)
    if stripes is not None:
        for x in (-0.15, 0.0, 0.15):
            p.line([(x, -0.6), (x, -0.3)], 0.06, stripes)
    for side in (-1.0, 1.0):
        _cat_eye(p, side * 0.3, -0.08, 0.16, iris)
    p.polygon([(-0.1, 0.18), (0.1, 0.18), (0.0, 0.3)], PINK)
    p.line([(0.0, 0.3), (-0.1, 0.4)], 0.03, BLACK)
    p.line([(0.0, 0.3), (0.1, 0.4)], 0.03, BLACK)
    for side in (-1.0, 1.0):
        for dy in (-0.06, 0.06):
            p.line([(side * 0.2, 0.3), (side * 0.95, 0.3 + 2 * dy)], 0.02, (225, 225, 225))


DEER_COATS: tuple[Color, ...] = ((170, 120, 70), (150, 85, 45), (130, 110, 90), (120, 70, 40))
LIGHT_FUR: Color = (228, 218, 195)
HOOF: Color = (40, 32, 28)


def draw_deer(p: Painter, rng: np.random.Generator) -> None:
    """A deer: slim body, thin legs, long neck, big ears; antlers on half, spots on some."""
    coat = pick(rng, DEER_COATS)
    for x in (-0.45, -0.32, 0.3, 0.42):
        p.line([(x, 0.05), (x + 0.02, 0.85)], 0.065, shade(coat, 0.9))
    p.ellipse(-0.05, -0.02, 0.52, 0.24, coat)
    p.ellipse(-0.05, 0.12, 0.38, 0.09, LIGHT_FUR)
    p.ellipse(-0.55, -0.1, 0.07, 0.11, WHITE)
    p.polygon([(0.22, -0.18), (0.46, -0.16), (0.66, -0.58), (0.48, -0.64)], coat)
    p.ellipse(0.68, -0.62, 0.18, 0.1, coat)
    p.ellipse(0.8, -0.6, 0.05, 0.04, BLACK)
    p.ellipse(0.5, -0.8, 0.05, 0.12, shade(coat, 0.85))
    if rng.random() < 0.5:
        antler = pick(rng, ((200, 180, 140), (150, 120, 85)), 10.0)
        p.line([(0.58, -0.7), (0.5, -0.9), (0.38, -1.05)], 0.04, antler)
        p.line([(0.5, -0.9), (0.62, -1.02)], 0.035, antler)
        p.line([(0.44, -0.98), (0.34, -0.94)], 0.035, antler)
    if rng.random() < 0.25:
        for x, y in rng.uniform((-0.45, -0.15), (0.3, 0.05), size=(7, 2)):
            p.ellipse(float(x), float(y), 0.035, 0.035, LIGHT_FUR)


DOG_COATS: tuple[Color, ...] = ((140, 95, 55), (210, 165, 90), (30, 30, 30), (235, 232, 225),
                                (120, 120, 125), (225, 205, 165))  # fmt: skip


def draw_dog(p: Painter, rng: np.random.Generator) -> None:
    """A standing dog (60%) or a close-up face; floppy ears (65%) or pointed ones."""
    coat = pick(rng, DOG_COATS)
    ears = shade(coat, 0.6) if rng.random() < 0.6 else pick(rng, DOG_COATS)
    muzzle = mix(coat, WHITE, 0.35)
    if rng.random() < 0.4:
        _draw_dog_face(p, coat, ears, muzzle, rng)
        return
    tail_up = rng.random() < 0.7
    p.line([(-0.6, -0.05), (-0.85, -0.4 if tail_up else 0.25)], 0.09, coat)
    for x in (-0.5, -0.36, 0.24, 0.38):
        p.line([(x, 0.05), (x, 0.66)], 0.12, coat)
    p.ellipse(-0.1, 0.0, 0.6, 0.27, coat)
    if rng.random() < 0.3:
        p.ellipse(-0.25, -0.05, 0.22, 0.16, pick(rng, DOG_COATS))
    p.polygon([(0.25, -0.15), (0.45, -0.05), (0.62, -0.35), (0.42, -0.45)], coat)
    p.ellipse(0.55, -0.36, 0.23, 0.22, coat)
    p.ellipse(0.8, -0.28, 0.2, 0.12, muzzle)
    p.ellipse(0.97, -0.31, 0.055, 0.05, BLACK)
    p.ellipse(0.62, -0.43, 0.04, 0.04, (40, 25, 15))
    if rng.random() < 0.65:
        p.ellipse(0.42, -0.26, 0.09, 0.22, ears)
    else:
        p.polygon([(0.36, -0.48), (0.42, -0.8), (0.54, -0.52)], ears)
    if rng.random() < 0.3:
        p.ellipse(0.8, -0.13, 0.06, 0.08, PINK)


def _draw_dog_face(
    p: Painter, coat: Color, ears: Color, muzzle: Color, rng: np.random.Generator
) -> None:
    p.ellipse(0.0, 0.0, 0.62, 0.7, coat)
    for side in (-1.0, 1.0):
        p.ellipse(side * 0.62, 0.1, 0.2, 0.46, ears)
        p.ellipse(side * 0.25, -0.12, 0.08, 0.08, (40, 25, 15))
    p.ellipse(0.0, 0.34, 0.36, 0.26, muzzle)
    p.ellipse(0.0, 0.2, 0.13, 0.09, BLACK)
    p.line([(0.0, 0.28), (0.0, 0.42)], 0.03, BLACK)
    if rng.random() < 0.4:
        p.ellipse(0.0, 0.56, 0.1, 0.12, PINK)


FROG_SKINS: tuple[Color, ...] = ((80, 160, 60), (110, 130, 60), (130, 100, 60), (170, 190, 70),
                                 (200, 70, 40))  # fmt: skip


def draw_frog(p: Painter, rng: np.random.Generator) -> None:
    """A squat frog: wide body, folded hind leg, bulging eyes, spots."""
    skin = pick(rng, FROG_SKINS)
    dark = shade(skin, 0.6)
    p.ellipse(0.05, -0.3, 0.12, 0.12, shade(skin, 0.85))
    p.ellipse(0.0, 0.08, 0.65, 0.36, skin)
    p.ellipse(0.05, 0.25, 0.5, 0.14, mix(skin, (235, 225, 170), 0.5))
    p.ellipse(-0.42, 0.2, 0.3, 0.18, shade(skin, 0.85))
    p.polygon([(-0.3, 0.36), (0.1, 0.42), (0.18, 0.52), (-0.36, 0.52)], shade(skin, 0.85))
    p.line([(0.38, 0.22), (0.46, 0.48)], 0.08, skin)
    for x, y in rng.uniform((-0.45, -0.15), (0.35, 0.12), size=(int(rng.integers(0, 7)), 2)):
        p.ellipse(float(x), float(y), 0.06, 0.05, dark)
    p.line([(0.42, 0.08), (0.64, 0.02)], 0.03, dark)
    p.ellipse(0.3, -0.28, 0.14, 0.14, skin)
    p.ellipse(0.33, -0.3, 0.08, 0.08, pick(rng, ((200, 160, 40), BLACK), 10.0))
    p.ellipse(0.34, -0.3, 0.035, 0.05, BLACK)


HORSE_COATS: tuple[Color, ...] = ((120, 70, 40), (160, 90, 50), (30, 28, 28), (210, 210, 205),
                                  (190, 160, 110), (170, 120, 70))  # fmt: skip


def draw_horse(p: Painter, rng: np.random.Generator) -> None:
    """A horse: large body, thick legs with hooves, dark mane and tail; blaze and socks on some."""
    coat = pick(rng, HORSE_COATS)
    hair = pick(rng, (BLACK, shade(coat, 0.55)), 8.0)
    socks = rng.random() < 0.3
    p.line([(-0.62, -0.12), (-0.78, 0.1), (-0.8, 0.4)], 0.13, hair)
    for x in (-0.5, -0.36, 0.32, 0.46):
        p.line([(x, 0.05), (x, 0.82)], 0.1, coat)
        if socks:
            p.line([(x, 0.62), (x, 0.8)], 0.1, WHITE)
        p.rect(x - 0.055, 0.8, x + 0.055, 0.88, HOOF)
    p.ellipse(-0.05, -0.02, 0.62, 0.28, coat)
    p.polygon([(0.3, -0.2), (0.58, -0.02), (0.82, -0.52), (0.6, -0.66)], coat)
    p.line([(0.3, -0.25), (0.6, -0.68)], 0.08, hair)
    p.polygon([(0.6, -0.72), (0.8, -0.6), (1.02, -0.27), (0.9, -0.18)], coat)
    p.polygon([(0.62, -0.7), (0.66, -0.86), (0.72, -0.68)], coat)
    p.ellipse(0.74, -0.55, 0.035, 0.035, BLACK)
    if rng.random() < 0.3:
        p.line([(0.72, -0.62), (0.95, -0.26)], 0.04, WHITE)


# ---------------------------------------------------------------------------------------------
# Scenes
# ---------------------------------------------------------------------------------------------

SKY_TOPS: tuple[Color, ...] = ((70, 130, 205), (105, 150, 200), (150, 158, 170), (200, 150, 120))
SKY_LIGHT: Color = (232, 238, 245)
WATERS: tuple[Color, ...] = ((40, 90, 145), (35, 105, 115), (75, 90, 105), (55, 120, 160))
ASPHALT: tuple[Color, ...] = ((85, 85, 90), (110, 108, 105), (62, 64, 68))
GRASS: tuple[Color, ...] = ((75, 135, 55), (115, 145, 65), (55, 100, 45), (150, 140, 85))
FOLIAGE: tuple[Color, ...] = ((40, 80, 40), (60, 95, 45), (35, 65, 45))
BARK: tuple[Color, ...] = ((90, 65, 45), (70, 55, 45), (120, 95, 70))
FLOORS: tuple[Color, ...] = ((150, 105, 65), (110, 80, 55), (170, 160, 150), (120, 60, 50))
BUILDINGS: tuple[Color, ...] = ((150, 150, 155), (170, 140, 115), (120, 110, 105))
SCENES = ("sky", "water", "road", "grass", "forest", "indoor")


def banded_canvas(
    horizon: int, upper: tuple[Color, Color], lower: tuple[Color, Color]
) -> Image.Image:
    """A canvas with a vertical gradient above ``horizon`` (canvas rows) and another below."""
    pixels = np.empty((CANVAS, CANVAS, 3), dtype=np.float32)
    for (top, bottom), rows in ((upper, range(0, horizon)), (lower, range(horizon, CANVAS))):
        if len(rows) == 0:
            continue
        t = np.linspace(0.0, 1.0, len(rows), dtype=np.float32)[:, None, None]
        band = (1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32)
        pixels[rows.start : rows.stop] = band
    return Image.fromarray(np.rint(pixels).astype(np.uint8))


def _upper_colours(rng: np.random.Generator, kind: str) -> tuple[Color, Color]:
    if kind == "sky":
        top = pick(rng, SKY_TOPS)
        return top, mix(top, SKY_LIGHT, 0.55)
    if kind == "forest":
        leaves = pick(rng, FOLIAGE)
        return shade(leaves, 0.8), leaves
    wall = mix(random_vivid(rng), (235, 230, 220), rng.uniform(0.5, 0.85))
    return wall, shade(wall, 0.92)


def _lower_colours(rng: np.random.Generator, scene: str) -> tuple[Color, Color]:
    ground = {"sky": GRASS, "water": WATERS, "road": ASPHALT, "grass": GRASS,
              "forest": BARK + GRASS[2:3], "indoor": FLOORS}[scene]  # fmt: skip
    near = pick(rng, ground)
    far = mix(near, SKY_LIGHT, 0.35) if scene in ("sky", "water", "grass") else shade(near, 1.1)
    return far, shade(near, 0.8)


def paint_scene(scene: str, horizon: float, rng: np.random.Generator) -> Image.Image:
    """The background of ``scene`` with its ground line at canvas row ``horizon``."""
    row = int(np.clip(round(horizon), 0.15 * CANVAS, CANVAS))
    upper_kind = {"indoor": "wall", "forest": "forest"}.get(scene, "sky")
    if scene in ("road", "grass", "water") and rng.random() < 0.3:
        upper_kind = "forest"
    canvas = banded_canvas(row, _upper_colours(rng, upper_kind), _lower_colours(rng, scene))
    draw = ImageDraw.Draw(canvas)
    if upper_kind == "sky":
        _clouds(draw, rng, row)
        if scene == "road" and rng.random() < 0.5:
            _buildings(draw, rng, row)
    elif upper_kind == "forest":
        _trees(draw, rng, row, scene == "forest")
    else:
        _room(draw, rng, row)
    {"water": _waves, "road": _lane, "grass": _grass_strokes, "forest": _grass_strokes,
     "indoor": _floor_edge, "sky": _no_detail}[scene](draw, rng, row)  # fmt: skip
    return canvas


def _clouds(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    for _ in range(int(rng.integers(0, 4))):
        x, y = rng.uniform(0, CANVAS), rng.uniform(0, max(1, row * 0.7))
        rx, ry = rng.uniform(12, 40), rng.uniform(5, 12)
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=jittered(SKY_LIGHT, rng, 6.0))


def _buildings(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    x = rng.uniform(-20, 0)
    while x < CANVAS:
        width, height = rng.uniform(15, 40), rng.uniform(0.2, 0.8) * row
        draw.rectangle((x, row - height, x + width, row), fill=pick(rng, BUILDINGS))
        x += width + rng.uniform(0, 10)


def _trees(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int, deep: bool) -> None:
    """Tree trunks (deep forest: full height) or a tree line along the horizon."""
    leaves = pick(rng, FOLIAGE)
    if deep:
        for _ in range(int(rng.integers(2, 6))):
            x, width = rng.uniform(0, CANVAS), rng.uniform(4, 14)
            draw.rectangle((x, 0, x + width, row + rng.uniform(0, 8)), fill=pick(rng, BARK))
    for _ in range(int(rng.integers(4, 9))):
        x = rng.uniform(0, CANVAS)
        y = rng.uniform(0, row * 0.6) if deep else row - rng.uniform(5, 25)
        r = rng.uniform(8, 24)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=jittered(mix(leaves, GRASS[0], 0.4), rng))


def _room(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    """A window or picture frame on the wall (60%), a sofa or cushion (30%)."""
    if rng.random() < 0.6:
        x, y = rng.uniform(5, CANVAS - 50), rng.uniform(5, max(6, row - 50))
        w, h = rng.uniform(25, 50), rng.uniform(20, 40)
        frame = pick(rng, ((240, 240, 235), (90, 65, 45)))
        draw.rectangle((x, y, x + w, y + h), fill=frame)
        inside = pick(rng, SKY_TOPS) if rng.random() < 0.5 else random_vivid(rng)
        draw.rectangle((x + 4, y + 4, x + w - 4, y + h - 4), fill=inside)
    if rng.random() < 0.3:
        x, w = rng.uniform(-20, CANVAS - 40), rng.uniform(50, 110)
        top = row - rng.uniform(10, 35)
        draw.rounded_rectangle((x, top, x + w, row + 10), radius=8, fill=random_vivid(rng))


def _waves(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    for _ in range(int(rng.integers(8, 18))):
        x, y = rng.uniform(0, CANVAS), rng.uniform(row + 2, CANVAS)
        length = rng.uniform(6, 20) * (0.5 + (y - row) / CANVAS)
        colour = (215, 225, 235) if rng.random() < 0.5 else (20, 45, 70)
        draw.line((x, y, x + length, y), fill=jittered(colour, rng, 10.0), width=SUPERSAMPLE)


def _lane(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    draw.line((0, row, CANVAS, row), fill=jittered((170, 170, 165), rng), width=2 * SUPERSAMPLE)
    y = row + (CANVAS - row) * rng.uniform(0.55, 0.9)
    paint = pick(rng, ((235, 235, 230), (230, 190, 40)), 8.0)
    x = rng.uniform(-20, 0)
    while x < CANVAS:
        draw.line((x, y, x + 14, y), fill=paint, width=SUPERSAMPLE)
        x += rng.uniform(24, 34)


def _grass_strokes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    for _ in range(int(rng.integers(15, 35))):
        x, y = rng.uniform(0, CANVAS), rng.uniform(row, CANVAS)
        colour = (30, 70, 30) if rng.random() < 0.6 else (170, 190, 90)
        draw.line((x, y, x + rng.uniform(-3, 3), y - rng.uniform(4, 10)),
                  fill=jittered(colour, rng), width=2)


def _floor_edge(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    colour = pick(rng, ((240, 240, 235), (70, 55, 45)), 8.0)
    draw.line((0, row, CANVAS, row), fill=colour, width=2 * SUPERSAMPLE)


def _no_detail(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: int) -> None:
    pass


def draw_clutter(draw: ImageDraw.ImageDraw, rng: np.random.Generator, row: float) -> None:
    """0-2 rocks, bushes or balls on the ground, behind the object."""
    for _ in range(int(rng.integers(0, 3))):
        x, y = rng.uniform(0, CANVAS), rng.uniform(min(row, CANVAS - 4), CANVAS)
        r = rng.uniform(4, 14)
        colour = pick(rng, ((120, 120, 115), (60, 110, 45))) if rng.random() < 0.7 else (
            random_vivid(rng))
        draw.ellipse((x - r, y - 0.7 * r, x + r, y + 0.7 * r), fill=colour)


def draw_occluder(draw: ImageDraw.ImageDraw, rng: np.random.Generator) -> None:
    """A fence post, branch or leaf in front of the object, near an image edge."""
    kind = rng.random()
    x = rng.choice([rng.uniform(0, 0.25), rng.uniform(0.75, 1.0)]) * CANVAS
    if kind < 0.4:
        width = rng.uniform(5, 12)
        draw.rectangle((x, rng.uniform(0.3, 0.7) * CANVAS, x + width, CANVAS), fill=pick(rng, BARK))
    elif kind < 0.7:
        y = rng.uniform(0, 0.4) * CANVAS
        draw.line((x - 40, y, x + 40, y + rng.uniform(-20, 20)), fill=pick(rng, BARK),
                  width=int(rng.integers(3, 7)))
    else:
        y, r = rng.uniform(0, CANVAS), rng.uniform(6, 12)
        draw.ellipse((x - r, y - 0.5 * r, x + r, y + 0.5 * r), fill=pick(rng, FOLIAGE + GRASS))


# ---------------------------------------------------------------------------------------------
# Classes and one whole image
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectClass:
    """How one class is drawn and staged.

    draw: paints the object in object units. scenes: scene -> probability. base_y: object-unit
    height of the feet / wheels / waterline (the ground line goes a little above it).
    unit: output pixels per object unit at scale 1. tilt_deg: s.d. of the in-plane tilt.
    """

    name: str
    draw: Callable[[Painter, np.random.Generator], None]
    scenes: dict[str, float]
    base_y: float
    unit: float
    tilt_deg: float


OBJECT_CLASSES: tuple[ObjectClass, ...] = (
    ObjectClass("airplane", draw_airplane, {"sky": 0.75, "grass": 0.15, "road": 0.1}, 0.2,
                12.5, 12.0),
    ObjectClass("automobile", draw_automobile, {"road": 0.6, "grass": 0.15, "indoor": 0.1,
                                                 "forest": 0.15}, 0.45, 12.0, 5.0),
    ObjectClass("bird", draw_bird, {"sky": 0.35, "grass": 0.2, "forest": 0.3, "water": 0.15},
                0.5, 11.0, 10.0),
    ObjectClass("cat", draw_cat, {"indoor": 0.55, "grass": 0.3, "forest": 0.15}, 0.78, 11.0,
                7.0),
    ObjectClass("deer", draw_deer, {"forest": 0.5, "grass": 0.45, "road": 0.05}, 0.85, 11.0,
                5.0),
    ObjectClass("dog", draw_dog, {"grass": 0.45, "indoor": 0.4, "road": 0.15}, 0.66, 11.5, 6.0),
    ObjectClass("frog", draw_frog, {"grass": 0.35, "water": 0.35, "forest": 0.3}, 0.5, 11.5,
                8.0),
    ObjectClass("horse", draw_horse, {"grass": 0.65, "forest": 0.2, "road": 0.15}, 0.88, 11.5,
                5.0),
    ObjectClass("ship", draw_ship, {"water": 0.9, "sky": 0.1}, 0.25, 12.5, 4.0),
    ObjectClass("truck", draw_truck, {"road": 0.7, "grass": 0.15, "forest": 0.1,
                                       "indoor": 0.05}, 0.45, 12.5, 4.0),
)


def sample_pose(
    rng: np.random.Generator, object_class: ObjectClass, nuisance: float
) -> ObjectPose:
    """Position, scale, tilt and facing of one object (output pixels)."""
    centre = (IMAGE_SIZE - 1) / 2
    shift = np.clip(rng.normal(0.0, 3.0 * nuisance, size=2), -8.0, 8.0)
    scale = math.exp(float(np.clip(rng.normal(0.0, 0.2 * nuisance), -0.5, 0.3)))
    tilt = float(np.clip(rng.normal(0.0, object_class.tilt_deg * nuisance),
                         -2.5 * object_class.tilt_deg, 2.5 * object_class.tilt_deg))
    return ObjectPose((centre + float(shift[0]), centre + float(shift[1])),
                      object_class.unit * scale, math.radians(tilt), bool(rng.random() < 0.5))


def ground_row(pose: ObjectPose, object_class: ObjectClass, scene: str,
               rng: np.random.Generator) -> float:
    """Canvas row of the scene's horizon: a little above the object's base, low for sky."""
    if scene == "sky":
        return rng.uniform(0.8, 1.2) * CANVAS
    base = float(pose.to_canvas([(0.0, object_class.base_y)])[0, 1])
    above = rng.uniform(1.0, 6.0) if scene == "water" else rng.uniform(3.0, 14.0)
    return base - above * SUPERSAMPLE


def light_and_noise(pixels: np.ndarray, rng: np.random.Generator, nuisance: float) -> np.ndarray:
    """Contrast, saturation, brightness, colour cast, a light gradient and sensor noise.

    pixels: uint8 [H, W, 3]; returns uint8 [H, W, 3].
    """
    height, width, _ = pixels.shape
    x = pixels.astype(np.float32)
    grey = x.mean(axis=2, keepdims=True)
    x = grey + (x - grey) * math.exp(rng.normal(0.0, 0.2 * nuisance))  # saturation
    mean = x.mean(axis=(0, 1), keepdims=True)
    x = mean + (x - mean) * math.exp(rng.normal(0.0, 0.15 * nuisance))  # contrast
    angle = rng.uniform(0.0, 2 * math.pi)
    strength = rng.uniform(0.0, 0.5) * nuisance
    xs = (np.arange(width, dtype=np.float32) - width / 2) / width
    ys = (np.arange(height, dtype=np.float32) - height / 2) / height
    gradient = 1.0 + strength * (math.cos(angle) * xs[None, :] + math.sin(angle) * ys[:, None])
    brightness = math.exp(rng.normal(0.0, 0.15 * nuisance))
    cast = np.exp(rng.normal(0.0, 0.05 * nuisance, size=3)).astype(np.float32)
    x = x * (brightness * gradient)[:, :, None] * cast
    x = x + rng.standard_normal(x.shape, dtype=np.float32) * rng.uniform(1.0, 9.0) * nuisance
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def image_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent RNGs of image ``index``: (scene and pose, object, lighting)."""
    sequence = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, DRAW_STREAM, index])
    return tuple(np.random.default_rng(child) for child in sequence.spawn(3))


def render_object(label: int, seed: int, index: int, nuisance: float = 1.0) -> np.ndarray:
    """Image ``index`` of class ``label`` (index into CLASS_NAMES): uint8 [32, 32, 3]."""
    scene_rng, object_rng, light_rng = image_rngs(seed, index)
    object_class = OBJECT_CLASSES[label]
    scenes = list(object_class.scenes)
    scene = scenes[int(scene_rng.choice(len(scenes), p=list(object_class.scenes.values())))]
    pose = sample_pose(scene_rng, object_class, nuisance)
    row = ground_row(pose, object_class, scene, scene_rng)
    canvas = paint_scene(scene, row, scene_rng)
    if scene != "sky" and scene_rng.random() < 0.6 * nuisance:
        draw_clutter(ImageDraw.Draw(canvas), scene_rng, row)
    object_class.draw(Painter(canvas, pose), object_rng)
    if scene_rng.random() < 0.3 * nuisance:
        draw_occluder(ImageDraw.Draw(canvas), scene_rng)
    small = canvas.reduce(SUPERSAMPLE)
    if light_rng.random() < 0.5 * nuisance:  # out of focus or motion: a soft 32 px image
        small = small.filter(ImageFilter.GaussianBlur(light_rng.uniform(0.3, 0.9)))
    return light_and_noise(np.asarray(small), light_rng, nuisance)


# ---------------------------------------------------------------------------------------------
# Many images
# ---------------------------------------------------------------------------------------------


def balanced_labels(num_images: int, seed: int) -> np.ndarray:
    """int64 [num_images]: every block of 10 consecutive labels is a permutation of 0..9.

    >>> sorted(balanced_labels(20, seed=0)[:10].tolist())
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, LABEL_STREAM]))
    blocks = -(-num_images // len(CLASS_NAMES))
    tiles = np.tile(np.arange(len(CLASS_NAMES), dtype=np.int64), (blocks, 1))
    return rng.permuted(tiles, axis=1).reshape(-1)[:num_images]


def _render_chunk(job: tuple[int, int, np.ndarray, float]) -> np.ndarray:
    """uint8 [len(labels), 32, 32, 3]: images ``start ...`` of the given labels."""
    seed, start, labels, nuisance = job
    return np.stack([render_object(int(label), seed, start + k, nuisance)
                     for k, label in enumerate(labels)])


def generate_objects(
    num_images: int, seed: int, *, nuisance: float = 1.0, workers: int | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``num_images`` images: (uint8 [N, 32, 32, 3] RGB, int64 [N] labels).

    Labels index CLASS_NAMES and are balanced in blocks of 10 (see the module docstring).
    nuisance: strength of the pose, colour, clutter, lighting and noise variation (1 = default).
    workers: drawing processes (None: 2, or 1 below 2,000 images or on a 1-CPU machine); the
    output does not depend on it.
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if nuisance < 0:
        raise ValueError(f"nuisance must be >= 0, got {nuisance}")
    labels = balanced_labels(num_images, seed)
    jobs = [(seed, start, labels[start : start + CHUNK], nuisance)
            for start in range(0, num_images, CHUNK)]
    count = resolve_workers(workers, num_images, POOL_MIN_IMAGES)
    chunks = with_progress(ordered_map(_render_chunk, jobs, count), num_images,
                           "drawing objects", progress, size=len)
    images = np.empty((num_images, IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)
    for (_, start, _, _), chunk in zip(jobs, chunks, strict=True):
        images[start : start + len(chunk)] = chunk
    return images, labels


# ---------------------------------------------------------------------------------------------
# CIFAR-10 files
# ---------------------------------------------------------------------------------------------


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """uint8 [N, 32, 32, 3] -> uint8 [N, 3072]: red plane, green plane, blue plane, row-major."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2).reshape(len(images), -1))


def _write_pickle(path: Path, entry: dict) -> None:
    with open(path, "wb") as handle:
        pickle.dump(entry, handle, protocol=PICKLE_PROTOCOL)


def _write_batch(path: Path, batch_label: str, images: np.ndarray, labels: np.ndarray,
                 first_row: int) -> None:
    names = [f"{CLASS_NAMES[label]}_s_{first_row + k:06d}.png"
             for k, label in enumerate(labels.tolist())]
    _write_pickle(path, {"batch_label": batch_label, "labels": labels.tolist(),
                         "data": cifar_rows(images), "filenames": names})


def write_cifar10(
    out_dir: str | Path, num_train: int = 50_000, num_test: int = 10_000, seed: int = 0, *,
    nuisance: float = 1.0, workers: int | None = None, progress: bool = False,
) -> Path:
    """Write ``OUT/cifar-10-batches-py/`` (layout: module docstring) and return that folder.

    The loaders take ``out_dir`` as the dataset root. Images ``0 .. num_train - 1`` of
    :func:`generate_objects` are split over the five training batches in order (the first
    batches get one more image when ``num_train`` is not a multiple of 5), the next
    ``num_test`` images form ``test_batch``. Defaults: the real CIFAR-10 sizes (50,000 /
    10,000). Existing files of the same names are overwritten.
    """
    if num_train < len(TRAIN_FILES):
        raise ValueError(f"num_train must be >= {len(TRAIN_FILES)} (one per batch), "
                         f"got {num_train}")
    if num_test < 1:
        raise ValueError(f"num_test must be >= 1, got {num_test}")
    images, labels = generate_objects(num_train + num_test, seed, nuisance=nuisance,
                                      workers=workers, progress=progress)
    folder = Path(out_dir) / BASE_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    batches = np.array_split(np.arange(num_train), len(TRAIN_FILES))
    for k, (name, rows) in enumerate(zip(TRAIN_FILES, batches, strict=True), start=1):
        _write_batch(folder / name, f"training batch {k} of {len(TRAIN_FILES)}", images[rows],
                     labels[rows], int(rows[0]))
    test = slice(num_train, num_train + num_test)
    _write_batch(folder / TEST_FILE, "testing batch 1 of 1", images[test], labels[test],
                 num_train)
    _write_pickle(folder / META_FILE, {"num_cases_per_batch": len(batches[0]),
                                       "label_names": list(CLASS_NAMES),
                                       "num_vis": VALUES_PER_IMAGE})
    return folder
