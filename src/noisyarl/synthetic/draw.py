"""Rendering of one procedural face for :mod:`noisyarl.synthetic.faces`.

A face is described in *face units*: the origin is the midpoint between the eye centres, x points
to the image's right, y points down, and the nominal half-width of the face is 1. A per-image pose
(shift, scale, in-plane rotation) maps face units to pixels; every shape is a polygon or polyline
in face units pushed through that map, so landmarks are exactly where the features are drawn.

Drawing happens on a canvas ``SUPERSAMPLE`` times larger than the output (anti-aliasing), which is
then box-filtered down. Lighting, colour cast and sensor noise are applied to the downsampled
pixels, and the result goes through a JPEG encode (and, on request, decode).

Pixel convention: integer pixel coordinates are pixel centres (PIL's convention), so a landmark
``(x, y)`` names the column and row of the pixel that holds the drawn point.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SUPERSAMPLE = 2
DRAW_STREAM = 7  # entropy word that separates the per-image drawing RNG from label sampling

Color = tuple[int, int, int]

FACIAL_HAIR_NONE, STUBBLE, MUSTACHE, GOATEE, FULL_BEARD = range(5)
HAIR_SHORT, HAIR_MEDIUM, HAIR_LONG = range(3)


@dataclass(frozen=True)
class Layout:
    """Where the face sits in the image of one dataset format.

    height_ratio: image height / width. eye_centre: the midpoint between the eyes as fractions
    of the image *width* (x, y). unit: pixels per face unit as a fraction of the width.
    rotation_deg / shift / log_scale: standard deviations of the pose jitter at nuisance 1
    (degrees, fraction of width, natural log of the scale factor).
    """

    name: str
    height_ratio: float
    eye_centre: tuple[float, float]
    unit: float
    rotation_deg: float
    shift: float
    log_scale: float

    def height(self, width: int) -> int:
        """Image height in px for an image ``width`` px wide."""
        return round(width * self.height_ratio)


# CelebA aligned crops: 178 x 218, eyes at y ~ 111 px, about 39 px apart.
CELEBA_LAYOUT = Layout("celeba", 218 / 178, (0.5, 0.6246), 0.275, 3.0, 0.02, 0.04)
# FairFace crops (25% margin around the detected face): square, looser alignment.
FAIRFACE_LAYOUT = Layout("fairface", 1.0, (0.5, 0.42), 0.28, 6.0, 0.04, 0.07)
LAYOUTS = {layout.name: layout for layout in (CELEBA_LAYOUT, FAIRFACE_LAYOUT)}


@dataclass(frozen=True)
class FaceSpec:
    """Everything drawn for one image (sampled by :mod:`noisyarl.synthetic.faces`).

    Identity traits (constant for a person): race, male, skin (RGB), face_width (half-width in
    face units), jaw_exponent (superellipse exponent of the lower face: 2 round .. 3.4 square),
    eye_spacing (half the distance between eye centres), eye_scale, eye_openness (eye height /
    width), iris_color, nose_width, nose_length, mouth_half_width, lip_thickness,
    brow_thickness, brow_arch, hair_color, hair_length (HAIR_SHORT/MEDIUM/LONG), hair_volume,
    curly, bald, bangs.
    Per image: age_years, smiling, mouth_open, eyeglasses, facial_hair (FACIAL_HAIR_NONE,
    STUBBLE, MUSTACHE, GOATEE, FULL_BEARD), lipstick.
    """

    race: int
    male: bool
    skin: Color
    face_width: float
    jaw_exponent: float
    eye_spacing: float
    eye_scale: float
    eye_openness: float
    iris_color: Color
    nose_width: float
    nose_length: float
    mouth_half_width: float
    lip_thickness: float
    brow_thickness: float
    brow_arch: float
    hair_color: Color
    hair_length: int
    hair_volume: float
    curly: bool
    bald: bool
    bangs: bool
    age_years: float
    smiling: bool
    mouth_open: bool
    eyeglasses: bool
    facial_hair: int
    lipstick: bool


@dataclass(frozen=True)
class RenderJob:
    """One image to render: its spec, where its RNG comes from and the output settings.

    The drawing RNGs derive from ``SeedSequence([seed, DRAW_STREAM, index])`` (see
    :func:`image_rngs`), so a job renders the same bytes in any process.
    jpeg_quality: inclusive (low, high) range of the per-image quality.
    nuisance: scale of pose jitter, lighting, background texture and pixel noise (0 = none).
    """

    spec: FaceSpec
    seed: int
    index: int
    width: int
    layout: str
    nuisance: float
    jpeg_quality: tuple[int, int]
    decode: bool = False


@dataclass(frozen=True)
class RenderedFace:
    """The result of one job.

    jpeg: the encoded file. pixels: the decoded JPEG, uint8 [H, W, 3] (only if requested).
    landmarks: 10 ints (lefteye_x, lefteye_y, righteye_x, righteye_y, nose_x, nose_y,
    leftmouth_x, leftmouth_y, rightmouth_x, rightmouth_y), px. bbox: (x, y, w, h) of the face
    outline (forehead to chin, cheek to cheek), px, clipped to the image.
    """

    jpeg: bytes
    pixels: np.ndarray | None
    landmarks: tuple[int, ...]
    bbox: tuple[int, int, int, int]


# ---------------------------------------------------------------------------------------------
# Geometry in face units
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FaceGeometry:
    """Positions and sizes of one face, in face units (see the module docstring)."""

    face_width: float
    top_y: float
    centre_y: float
    chin_y: float
    jaw_exponent: float
    eye_x: tuple[float, float]
    eye_half_width: float
    eye_half_height: float
    iris_radius: float
    gaze: tuple[float, float]
    nose_tip: tuple[float, float]
    nose_width: float
    mouth_centre: tuple[float, float]
    mouth_half_width: float
    mouth_lift: float
    mouth_gap: float
    upper_lip: float
    lower_lip: float
    childhood: float
    old_age: float

    @property
    def mouth_corner_y(self) -> float:
        return self.mouth_centre[1] - self.mouth_lift

    def landmark_points(self) -> np.ndarray:
        """The 5 CelebA landmarks in face units, [5, 2] (left eye, right eye, nose, mouth l/r)."""
        gx, gy = self.gaze
        mx, _ = self.mouth_centre
        corner_y = self.mouth_corner_y
        return np.array(
            [
                [self.eye_x[0] + gx, gy],
                [self.eye_x[1] + gx, gy],
                list(self.nose_tip),
                [mx - self.mouth_half_width, corner_y],
                [mx + self.mouth_half_width, corner_y],
            ]
        )


def face_geometry(spec: FaceSpec, rng: np.random.Generator, nuisance: float) -> FaceGeometry:
    """Place the features of ``spec`` for one image (age, expression and a small yaw)."""
    childhood = float(np.clip((18.0 - spec.age_years) / 18.0, 0.0, 1.0))
    old_age = float(np.clip((spec.age_years - 28.0) / 50.0, 0.0, 1.0))
    yaw = float(np.clip(rng.normal(0.0, 0.04 * nuisance), -0.1, 0.1))
    eye_half_width = 0.13 * spec.eye_scale * (1.0 + 0.28 * childhood)
    squint = 0.78 if spec.smiling else 1.0
    eye_half_height = eye_half_width * spec.eye_openness * squint * (1.0 - 0.2 * old_age)
    gaze_x = float(np.clip(rng.normal(0.0, 0.12), -0.25, 0.25)) * eye_half_width
    nose_y = spec.nose_length * (0.5 - 0.08 * childhood)
    mouth_y = nose_y + 0.42 - 0.06 * childhood + 0.03 * old_age
    # Draw every number whatever the labels, so flipping a label moves nothing else.
    smile_lift, neutral_lift = float(rng.uniform(0.09, 0.17)), float(rng.uniform(-0.05, 0.025))
    open_gap = float(rng.uniform(0.07, 0.15))
    lift = smile_lift if spec.smiling else neutral_lift
    gap = open_gap if spec.mouth_open else 0.0
    lip = spec.lip_thickness * (1.0 - 0.35 * old_age)
    smile_stretch = 1.14 if spec.smiling else 1.0
    mouth_half_width = spec.mouth_half_width * smile_stretch * (1.0 - 0.18 * childhood)
    return FaceGeometry(
        face_width=spec.face_width * (1.0 + 0.05 * childhood),
        top_y=-1.0 - 0.22 * childhood,
        centre_y=0.2,
        chin_y=1.5 - 0.18 * childhood + 0.04 * old_age,
        jaw_exponent=max(2.0, spec.jaw_exponent - 0.6 * childhood),  # children: round faces
        eye_x=(-spec.eye_spacing + 0.6 * yaw, spec.eye_spacing + 0.6 * yaw),
        eye_half_width=eye_half_width,
        eye_half_height=eye_half_height,
        iris_radius=0.46 * eye_half_width,
        gaze=(gaze_x, 0.0),
        nose_tip=(1.3 * yaw, nose_y),
        nose_width=spec.nose_width * (1.0 - 0.25 * childhood),
        mouth_centre=(1.0 * yaw, mouth_y),
        mouth_half_width=mouth_half_width,
        mouth_lift=lift,
        mouth_gap=gap,
        upper_lip=lip,
        lower_lip=1.3 * lip,
        childhood=childhood,
        old_age=old_age,
    )


def ellipse_points(
    cx: float,
    cy: float,
    rx: float,
    ry: float,
    start: float = 0.0,
    end: float = 2 * math.pi,
    count: int = 24,
) -> np.ndarray:
    """Points [count, 2] on an ellipse from angle ``start`` to ``end`` (radians, y down)."""
    angles = np.linspace(start, end, count)
    return np.stack([cx + rx * np.cos(angles), cy + ry * np.sin(angles)], axis=1)


def face_outline(g: FaceGeometry, grow: float = 1.0, count: int = 64) -> np.ndarray:
    """The face contour [count, 2]: an ellipse above ``centre_y``, a superellipse jaw below.

    grow: scale factor about (0, centre_y), e.g. 1.04 for a beard that sticks out a little.
    """
    angles = np.linspace(0.0, 2 * math.pi, count, endpoint=False)
    cos, sin = np.cos(angles), np.sin(angles)
    lower = sin > 0
    power = np.where(lower, 2.0 / g.jaw_exponent, 1.0)
    half_height = np.where(lower, g.chin_y - g.centre_y, g.centre_y - g.top_y)
    x = g.face_width * np.sign(cos) * np.abs(cos) ** power
    y = g.centre_y + half_height * np.sign(sin) * np.abs(sin) ** power
    return np.stack([x * grow, g.centre_y + (y - g.centre_y) * grow], axis=1)


def face_half_width_at(g: FaceGeometry, y: np.ndarray) -> np.ndarray:
    """Half-width of the face outline at heights ``y`` (face units), same shape as ``y``."""
    below = y > g.centre_y
    span = np.where(below, g.chin_y - g.centre_y, g.centre_y - g.top_y)
    exponent = np.where(below, g.jaw_exponent, 2.0)
    t = np.clip(np.abs(y - g.centre_y) / span, 0.0, 1.0)
    return g.face_width * (1.0 - t**exponent) ** (1.0 / exponent)


# ---------------------------------------------------------------------------------------------
# Painter: face units -> canvas
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pose:
    """Map from face units to output pixels: ``origin + unit * R(angle) @ point``."""

    origin: tuple[float, float]
    unit: float
    angle: float

    def to_pixels(self, points: np.ndarray) -> np.ndarray:
        """Output-pixel coordinates [K, 2] (pixel-centre convention) of face points [K, 2]."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        points = np.asarray(points, dtype=float)
        x = self.origin[0] + self.unit * (c * points[:, 0] - s * points[:, 1])
        y = self.origin[1] + self.unit * (s * points[:, 0] + c * points[:, 1])
        return np.stack([x, y], axis=1)  # elementwise (no BLAS call in forked workers)


def sample_pose(rng: np.random.Generator, layout: Layout, width: int, nuisance: float) -> Pose:
    """The per-image pose: jittered eye midpoint, scale and in-plane rotation."""
    shift = np.clip(rng.normal(0.0, layout.shift * nuisance, size=2), -0.1, 0.1) * width
    scale = math.exp(float(np.clip(rng.normal(0.0, layout.log_scale * nuisance), -0.15, 0.15)))
    angle_deg = float(np.clip(rng.normal(0.0, layout.rotation_deg * nuisance), -15.0, 15.0))
    origin = (layout.eye_centre[0] * width + shift[0], layout.eye_centre[1] * width + shift[1])
    return Pose(origin, layout.unit * width * scale, math.radians(angle_deg))


class Painter:
    """Draws shapes given in face units onto the supersampled canvas."""

    def __init__(self, canvas: Image.Image, pose: Pose) -> None:
        self.canvas = canvas
        self.draw = ImageDraw.Draw(canvas)
        self.pose = pose

    def _canvas_points(self, points: np.ndarray) -> list[tuple[float, float]]:
        pixels = self.pose.to_pixels(points) * SUPERSAMPLE + (SUPERSAMPLE - 1) / 2
        return [(float(x), float(y)) for x, y in pixels]

    def _width(self, width_units: float) -> int:
        return max(1, round(width_units * self.pose.unit * SUPERSAMPLE))

    def polygon(self, points: np.ndarray, fill: Color) -> None:
        self.draw.polygon(self._canvas_points(points), fill=fill)

    def line(self, points: np.ndarray, width_units: float, fill: Color) -> None:
        self.draw.line(
            self._canvas_points(points), fill=fill, width=self._width(width_units), joint="curve"
        )

    def dots(self, points: np.ndarray, fill: Color) -> None:
        self.draw.point(self._canvas_points(points), fill=fill)

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, fill: Color) -> None:
        self.polygon(ellipse_points(cx, cy, rx, ry, count=20), fill)


def _channel(value: float) -> int:
    return int(min(255, max(0, round(value))))


def shade(color: Color, factor: float) -> Color:
    """``color`` scaled by ``factor`` (clipped to 0..255)."""
    red, green, blue = color
    return (_channel(red * factor), _channel(green * factor), _channel(blue * factor))


def mix(a: Color, b: Color, t: float) -> Color:
    """Linear blend ``(1 - t) * a + t * b``."""
    return (
        _channel((1 - t) * a[0] + t * b[0]),
        _channel((1 - t) * a[1] + t * b[1]),
        _channel((1 - t) * a[2] + t * b[2]),
    )


def random_color(rng: np.random.Generator, low: int = 20, high: int = 235) -> Color:
    red, green, blue = (int(v) for v in rng.integers(low, high + 1, size=3))
    return (red, green, blue)


# ---------------------------------------------------------------------------------------------
# Background and body
# ---------------------------------------------------------------------------------------------


def background(rng: np.random.Generator, size: tuple[int, int], nuisance: float) -> Image.Image:
    """A smooth random colour field of ``size`` = (width, height) px: a few muted colour blobs."""
    base = rng.uniform(40, 215) + rng.normal(0.0, 28.0, size=3)
    cells = int(rng.integers(2, 6))
    texture = rng.normal(0.0, 25.0 * nuisance, size=(cells + 1, cells, 3))
    tiny = np.clip(base + texture, 0, 255).astype(np.uint8)
    return Image.fromarray(tiny).resize(size, Image.Resampling.BILINEAR)


def draw_clothes(p: Painter, g: FaceGeometry, rng: np.random.Generator) -> float:
    """Shoulders in clothes of a random colour; returns the y of the neckline's sides."""
    top = g.chin_y + float(rng.uniform(0.35, 0.6))
    neck = 0.5 * g.face_width
    clothes = np.array(
        [
            [-4.0, top + 0.7],
            [-1.5, top + 0.15],
            [-neck, top],
            [0.0, top + 0.3],
            [neck, top],
            [1.5, top + 0.15],
            [4.0, top + 0.7],
            [4.0, 8.0],
            [-4.0, 8.0],
        ]
    )
    p.polygon(clothes, random_color(rng))
    return top


def draw_neck(p: Painter, spec: FaceSpec, g: FaceGeometry, neckline_y: float) -> None:
    """The neck, from under the jaw down to the V of the neckline."""
    half = 0.44 * g.face_width * (1.12 if spec.male else 1.0)
    # Where the neck's sides meet the V from (0.5 * face_width, neckline_y) to (0, + 0.3).
    side = neckline_y + 0.3 * (1 - half / (0.5 * g.face_width))
    p.polygon(
        np.array([[-half, 0.9], [half, 0.9], [half, side], [0.0, neckline_y + 0.3], [-half, side]]),
        shade(spec.skin, 0.84),
    )


def draw_ears(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    for side in (-1.0, 1.0):
        p.ellipse(side * g.face_width * 0.97, 0.22, 0.12, 0.22, shade(spec.skin, 0.92))


# ---------------------------------------------------------------------------------------------
# Hair
# ---------------------------------------------------------------------------------------------


def _hair_outer_arc(spec: FaceSpec, g: FaceGeometry, bottom_y: float) -> np.ndarray:
    """Outer contour of the hair from the left side at ``bottom_y`` over the top to the right."""
    rx = g.face_width + spec.hair_volume
    ry = g.centre_y - g.top_y + spec.hair_volume
    reach = math.asin(min(0.95, max(-0.95, (bottom_y - g.centre_y) / ry)))
    angles = np.linspace(math.pi - reach, 2 * math.pi + reach, 60)
    radius = 1.0 + (0.035 * np.sin(26 * angles) if spec.curly else 0.0)
    arc = np.stack([rx * radius * np.cos(angles), g.centre_y + ry * radius * np.sin(angles)], 1)
    if bottom_y > g.centre_y + ry * 0.95:
        ends = np.array([[-rx, bottom_y], [rx, bottom_y]])
        arc = np.concatenate([ends[:1], arc, ends[1:]])
    return arc


def _hair_length_y(spec: FaceSpec, g: FaceGeometry) -> float:
    return {HAIR_SHORT: 0.3, HAIR_MEDIUM: 1.05, HAIR_LONG: 2.6}[spec.hair_length] * (
        1.0 - 0.2 * g.childhood
    )


def draw_back_hair(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    """Hair behind the head and neck (medium and long styles)."""
    if spec.bald or spec.hair_length == HAIR_SHORT:
        return
    bottom = _hair_length_y(spec, g)
    p.polygon(_hair_outer_arc(spec, g, bottom), shade(spec.hair_color, 0.85))


def _hairline(spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator) -> np.ndarray:
    """Inner edge of the hair across the forehead, right to left, [K, 2] (inside the face)."""
    height = g.centre_y - g.top_y
    t = np.linspace(1.0, -1.0, 13)
    if spec.bangs:
        ys = g.top_y + 0.62 * height + 0.05 * (np.arange(13) % 2) + rng.normal(0.0, 0.015, 13)
    else:
        recede = 0.1 if spec.male and g.old_age > 0.5 else 0.0
        ys = g.top_y + (0.27 - recede) * height + 0.15 * height * t**2
    xs = t * face_half_width_at(g, ys)
    return np.stack([xs, ys], axis=1)


def draw_front_hair(p: Painter, spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator) -> None:
    """The hair cap over the top of the head, side locks for medium/long hair, or bald sides."""
    if spec.bald:
        for side in (-1.0, 1.0):
            w = g.face_width
            patch = np.array(
                [[0.9 * w, -0.35], [1.06 * w, -0.3], [1.06 * w, 0.25], [0.93 * w, 0.25]]
            )
            p.polygon(patch * np.array([side, 1.0]), spec.hair_color)
        return
    long_sides = spec.hair_length != HAIR_SHORT
    side_bottom = min(_hair_length_y(spec, g), 1.15) if long_sides else 0.28
    hairline = _hairline(spec, g, rng)
    side_ys = np.linspace(side_bottom, hairline[0, 1], 8)
    inset = 0.8 if long_sides else 0.96
    side_xs = inset * face_half_width_at(g, side_ys)
    right = np.stack([side_xs, side_ys], axis=1)
    left = (right * np.array([-1.0, 1.0]))[::-1]
    outer = _hair_outer_arc(spec, g, side_bottom)
    p.polygon(np.concatenate([outer, right, hairline, left]), spec.hair_color)
    _draw_hair_strands(p, spec, g, rng)


def _draw_hair_strands(
    p: Painter, spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator
) -> None:
    """A few arcs of a lighter or darker hair shade inside the cap (texture)."""
    rx = g.face_width + spec.hair_volume
    ry = g.centre_y - g.top_y + spec.hair_volume
    for _ in range(int(rng.integers(3, 7))):
        scale = float(rng.uniform(0.88, 0.97))
        start = float(rng.uniform(1.15, 1.45)) * math.pi
        span = float(rng.uniform(0.15, 0.35)) * math.pi
        arc = ellipse_points(0.0, g.centre_y, rx * scale, ry * scale, start, start + span, 10)
        tone = shade(spec.hair_color, float(rng.choice([0.7, 1.25])))
        p.line(arc, 0.025, tone)


# ---------------------------------------------------------------------------------------------
# Skin, age lines and facial hair
# ---------------------------------------------------------------------------------------------


def draw_face_skin(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    p.polygon(face_outline(g), spec.skin)


def draw_age_lines(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    """Forehead lines, crow's feet, under-eye bags and nasolabial folds; more with age."""
    o = g.old_age
    line = shade(spec.skin, 0.74 - 0.08 * o)
    width = 0.022 + 0.012 * o
    forehead_lines = int(round(4 * o))
    for k in range(forehead_lines):
        y = -0.42 - 0.1 * k
        xs = np.linspace(-0.45, 0.45, 9)
        p.line(np.stack([xs, y + 0.04 * (xs / 0.45) ** 2], axis=1), width, line)
    if o > 0.3:
        for side, x in ((-1.0, g.eye_x[0]), (1.0, g.eye_x[1])):
            outer = x + side * (g.eye_half_width + 0.05)
            for dy in (-0.05, 0.0, 0.05):
                p.line(np.array([[outer, dy * 0.5], [outer + side * 0.12, dy * 1.6]]), width, line)
    if o > 0.45:
        for x in g.eye_x:
            bag = ellipse_points(
                x, 0.02, g.eye_half_width * 0.9, 0.12, 0.25 * math.pi, 0.75 * math.pi, 8
            )
            p.line(bag, width, line)
    if o > 0.12 or spec.smiling:
        strength = max(o, 0.5 if spec.smiling else 0.0)
        fold_color = shade(spec.skin, 0.82 - 0.12 * strength)
        nx, ny = g.nose_tip
        for side in (-1.0, 1.0):
            start = [nx + side * (g.nose_width + 0.07), ny - 0.02]
            mid = [nx + side * (g.mouth_half_width + 0.02), g.mouth_corner_y - 0.12]
            end = [g.mouth_centre[0] + side * (g.mouth_half_width + 0.07), g.mouth_corner_y + 0.08]
            p.line(np.array([start, mid, end]), width, fold_color)


def _lower_face_samples(
    g: FaceGeometry, rng: np.random.Generator, count: int, top_y: float
) -> np.ndarray:
    """About ``count`` uniform points [K, 2] in the face below ``top_y`` (rejection sampled)."""
    xs = rng.uniform(-g.face_width, g.face_width, count)
    ys = rng.uniform(top_y, g.chin_y, count)
    inside = np.abs(xs) < 0.97 * face_half_width_at(g, ys)
    return np.stack([xs[inside], ys[inside]], axis=1)


def beard_color(spec: FaceSpec) -> Color:
    return shade(spec.hair_color, 0.8) if sum(spec.hair_color) > 450 else spec.hair_color


def draw_beard_base(p: Painter, spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator) -> None:
    """Stubble dots or the full-beard area (drawn under the mouth)."""
    if spec.facial_hair == STUBBLE:
        density = 0.35 * (p.pose.unit * SUPERSAMPLE) ** 2
        area = 2 * g.face_width * (g.chin_y - g.nose_tip[1])
        points = _lower_face_samples(g, rng, int(density * area), g.nose_tip[1] + 0.1)
        p.dots(points, mix(spec.skin, beard_color(spec), 0.75))
    elif spec.facial_hair == FULL_BEARD:
        outline = face_outline(g, grow=1.05)
        jaw = outline[outline[:, 1] >= 0.45]  # right cheek -> chin -> left cheek
        m = g.mouth_half_width
        top = np.array(
            [
                [-(m + 0.14), g.mouth_corner_y - 0.12],
                [-0.2, g.nose_tip[1] + 0.12],
                [0.2, g.nose_tip[1] + 0.12],
                [m + 0.14, g.mouth_corner_y - 0.12],
            ]
        )
        p.polygon(np.concatenate([jaw, top]), beard_color(spec))


def draw_mustache_goatee(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    """Mustache above and/or goatee below the lips (drawn over the mouth)."""
    color = beard_color(spec)
    mx, my = g.mouth_centre
    m = g.mouth_half_width
    if spec.facial_hair in (MUSTACHE, FULL_BEARD):
        xs = np.linspace(-m - 0.04, m + 0.04, 9)
        lip_top = _mouth_line(g, xs - mx) - g.mouth_gap / 2 - g.upper_lip * 0.7
        thickness = 0.05 + 0.05 * (1 - ((xs - mx) / (m + 0.04)) ** 2)
        lower = np.stack([xs, lip_top], axis=1)
        upper = np.stack([xs, lip_top - thickness], axis=1)[::-1]
        p.polygon(np.concatenate([lower, upper]), color)
    if spec.facial_hair in (GOATEE, FULL_BEARD):
        lip_bottom = my + g.mouth_gap / 2 + g.lower_lip + 0.02
        chin = g.chin_y + 0.04
        goatee = np.array(
            [
                [mx - 0.22, lip_bottom],
                [mx + 0.22, lip_bottom],
                [mx + 0.2, chin - 0.08],
                [mx, chin],
                [mx - 0.2, chin - 0.08],
            ]
        )
        p.polygon(goatee, color)


# ---------------------------------------------------------------------------------------------
# Eyes, brows, nose, mouth, glasses
# ---------------------------------------------------------------------------------------------


def draw_eyes(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    """Sclera, iris and pupil, with the skin above and below re-drawn to clip the iris."""
    ew, eh = g.eye_half_width, g.eye_half_height
    reach = g.iris_radius + 0.06
    lid_color = (45, 32, 30)
    for x in g.eye_x:
        p.ellipse(x, 0.0, ew, eh, (236, 233, 226))
        ix, iy = x + g.gaze[0], g.gaze[1]
        p.ellipse(ix, iy, g.iris_radius, g.iris_radius, spec.iris_color)
        p.ellipse(ix, iy, 0.45 * g.iris_radius, 0.45 * g.iris_radius, (14, 10, 10))
        upper = ellipse_points(x, 0.0, ew, eh, math.pi, 2 * math.pi, 16)
        lower = ellipse_points(x, 0.0, ew, eh, 0.0, math.pi, 16)
        p.polygon(np.concatenate([upper, [[x + ew, -reach], [x - ew, -reach]]]), spec.skin)
        p.polygon(np.concatenate([lower, [[x - ew, reach], [x + ew, reach]]]), spec.skin)
        p.line(upper, 0.03 if spec.male else 0.042, lid_color)


def draw_brows(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    color = shade(spec.hair_color, 0.75) if sum(spec.hair_color) > 400 else spec.hair_color
    y = -(g.eye_half_height + 0.13 + 0.04 * g.childhood)
    for side, x in ((-1.0, g.eye_x[0]), (1.0, g.eye_x[1])):
        xs = x + side * np.linspace(-0.17, 0.2, 7)
        t = np.linspace(-1.0, 1.0, 7)
        ys = y - spec.brow_arch * (1 - t**2) + 0.02 * t
        p.line(np.stack([xs, ys], axis=1), spec.brow_thickness, color)


def draw_nose(p: Painter, spec: FaceSpec, g: FaceGeometry) -> None:
    nx, ny = g.nose_tip
    w = g.nose_width
    p.line(
        np.array([[nx - 0.06, -0.05], [nx - 0.07, ny - 0.25], [nx - 0.5 * w, ny - 0.08]]),
        0.04,
        shade(spec.skin, 0.88),
    )
    for side in (-1.0, 1.0):
        p.ellipse(nx + side * 0.55 * w, ny + 0.03, 0.045, 0.026, shade(spec.skin, 0.45))
        ala = np.array(
            [
                [nx + side * w, ny - 0.07],
                [nx + side * 1.08 * w, ny],
                [nx + side * 0.8 * w, ny + 0.06],
            ]
        )
        p.line(ala, 0.025, shade(spec.skin, 0.7))


def _mouth_line(g: FaceGeometry, dx: np.ndarray) -> np.ndarray:
    """Height of the line between the lips at offsets ``dx`` from the mouth centre."""
    return g.mouth_centre[1] - g.mouth_lift * (dx / g.mouth_half_width) ** 2


def lip_color(spec: FaceSpec, rng: np.random.Generator) -> Color:
    lipstick = (int(rng.integers(160, 215)), int(rng.integers(20, 60)), int(rng.integers(40, 85)))
    return lipstick if spec.lipstick else mix(spec.skin, (165, 78, 78), 0.35)


def draw_mouth(p: Painter, spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator) -> None:
    """Lips along a curve whose corners rise when smiling; a dark gap (and teeth) when open."""
    mx = g.mouth_centre[0]
    dx = np.linspace(-g.mouth_half_width, g.mouth_half_width, 17)
    xs = mx + dx
    profile = np.sqrt(np.clip(1 - (dx / g.mouth_half_width) ** 2, 0.0, 1.0))
    middle = _mouth_line(g, dx)
    upper_inner = middle - 0.5 * g.mouth_gap * profile
    lower_inner = middle + 0.5 * g.mouth_gap * profile
    bow = 0.02 * np.exp(-((dx / (0.15 * g.mouth_half_width)) ** 2))
    upper_outer = upper_inner - g.upper_lip * profile**0.6 + bow
    lower_outer = lower_inner + g.lower_lip * profile**0.6
    lips = lip_color(spec, rng)

    def strip(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
        return np.concatenate([np.stack([xs, top], 1), np.stack([xs, bottom], 1)[::-1]])

    p.polygon(strip(upper_outer, upper_inner), shade(lips, 0.92))
    p.polygon(strip(lower_inner, lower_outer), lips)
    if g.mouth_gap > 0:
        p.polygon(strip(upper_inner, lower_inner), (52, 16, 20))
        teeth_share = 0.5 if spec.smiling else 0.3
        teeth_bottom = upper_inner + teeth_share * g.mouth_gap * profile
        p.polygon(strip(upper_inner, teeth_bottom), (232, 228, 214))
    else:
        p.line(np.stack([xs, middle], 1), 0.022, shade(lips, 0.5))


def draw_glasses(p: Painter, spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator) -> None:
    """Round or rectangular frames, a bridge and temple arms; sometimes dark lenses."""
    rx, ry = float(rng.uniform(0.19, 0.23)), float(rng.uniform(0.13, 0.17))
    width = float(rng.uniform(0.05, 0.08))
    dark, colored = (int(rng.integers(10, 70)),) * 3, random_color(rng)
    frame = dark if rng.random() < 0.7 else colored
    if sum(abs(f - s) for f, s in zip(frame, spec.skin, strict=True)) < 150:
        frame = (205, 205, 212) if sum(spec.skin) < 384 else (20, 20, 24)  # silver or black
    sunglasses = rng.random() < 0.15
    round_frames = rng.random() < 0.5
    y = 0.01
    for side, x in ((-1.0, g.eye_x[0]), (1.0, g.eye_x[1])):
        if round_frames:
            lens = ellipse_points(x, y, rx, ry, count=28)
        else:
            lens = _rounded_rect(x, y, rx, ry)
        if sunglasses:
            p.polygon(lens, (28, 28, 34))
        p.line(np.concatenate([lens, lens[:2]]), width, frame)
        temple = np.array([[x + side * rx, y - 0.03], [side * g.face_width * 0.99, -0.06]])
        p.line(temple, width, frame)
    bridge = np.array([[g.eye_x[0] + rx, y - 0.03], [0.0, y - 0.06], [g.eye_x[1] - rx, y - 0.03]])
    p.line(bridge, width, frame)


def _rounded_rect(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """A rectangle with rounded corners as a closed point list [K, 2]."""
    corner = 0.35 * min(rx, ry)
    centres = [
        (rx - corner, ry - corner),
        (-rx + corner, ry - corner),
        (-rx + corner, -ry + corner),
        (rx - corner, -ry + corner),
    ]
    parts = [
        ellipse_points(cx + ox, cy + oy, corner, corner, k * math.pi / 2, (k + 1) * math.pi / 2, 5)
        for k, (ox, oy) in enumerate(centres)
    ]
    return np.concatenate(parts)


# ---------------------------------------------------------------------------------------------
# Whole image
# ---------------------------------------------------------------------------------------------


def draw_face(p: Painter, spec: FaceSpec, g: FaceGeometry, rng: np.random.Generator) -> None:
    """All parts, back to front."""
    neckline_y = draw_clothes(p, g, rng)
    draw_back_hair(p, spec, g)
    draw_neck(p, spec, g, neckline_y)
    draw_ears(p, spec, g)
    draw_face_skin(p, spec, g)
    draw_beard_base(p, spec, g, rng)
    draw_age_lines(p, spec, g)
    draw_front_hair(p, spec, g, rng)
    draw_eyes(p, spec, g)
    draw_brows(p, spec, g)
    draw_nose(p, spec, g)
    draw_mouth(p, spec, g, rng)
    draw_mustache_goatee(p, spec, g)
    if spec.eyeglasses:
        draw_glasses(p, spec, g, rng)


def apply_lighting(pixels: np.ndarray, rng: np.random.Generator, nuisance: float) -> np.ndarray:
    """Brightness, a linear light gradient, a slight colour cast and Gaussian sensor noise.

    pixels: uint8 [H, W, 3]; returns uint8 [H, W, 3].
    """
    height, width, _ = pixels.shape
    angle = rng.uniform(0.0, 2 * math.pi)
    strength = rng.uniform(0.0, 0.6) * nuisance
    brightness = math.exp(rng.normal(0.0, 0.1 * nuisance))
    cast = np.exp(rng.normal(0.0, 0.03 * nuisance, size=3)).astype(np.float32)
    xs = (np.arange(width, dtype=np.float32) - width / 2) / width
    ys = (np.arange(height, dtype=np.float32) - height / 2) / width
    gradient = 1.0 + strength * (math.cos(angle) * xs[None, :] + math.sin(angle) * ys[:, None])
    light = (brightness * gradient)[:, :, None] * cast
    noise_std = rng.uniform(0.0, 3.0) * nuisance
    noise = rng.standard_normal(pixels.shape, dtype=np.float32) * noise_std
    lit = pixels.astype(np.float32) * light + noise
    return np.clip(np.rint(lit), 0, 255).astype(np.uint8)


def encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> np.ndarray:
    """uint8 [H, W, 3] pixels of a JPEG file's bytes."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def image_rngs(seed: int, index: int) -> tuple[np.random.Generator, ...]:
    """Independent RNGs of one image: (pose, face details, lighting and JPEG quality).

    Separate streams make counterfactuals clean: two specs that differ in one attribute get
    the same pose, background, lighting and noise.
    """
    sequence = np.random.SeedSequence([seed & 0xFFFFFFFFFFFFFFFF, DRAW_STREAM, index])
    return tuple(np.random.default_rng(child) for child in sequence.spawn(3))


def render_job(job: RenderJob) -> RenderedFace:
    """Draw, light and JPEG-encode one face (a top-level function, so pools can pickle it)."""
    pose_rng, face_rng, light_rng = image_rngs(job.seed, job.index)
    layout = LAYOUTS[job.layout]
    width, height = job.width, layout.height(job.width)
    pose = sample_pose(pose_rng, layout, width, job.nuisance)
    canvas = background(pose_rng, (width * SUPERSAMPLE, height * SUPERSAMPLE), job.nuisance)
    geometry = face_geometry(job.spec, pose_rng, job.nuisance)
    draw_face(Painter(canvas, pose), job.spec, geometry, face_rng)
    pixels = apply_lighting(np.asarray(canvas.reduce(SUPERSAMPLE)), light_rng, job.nuisance)
    quality = int(light_rng.integers(job.jpeg_quality[0], job.jpeg_quality[1] + 1))
    jpeg = encode_jpeg(pixels, quality)
    return RenderedFace(
        jpeg=jpeg,
        pixels=decode_jpeg(jpeg) if job.decode else None,
        landmarks=_landmark_pixels(pose, geometry, width, height),
        bbox=_face_bbox(pose, geometry, width, height),
    )


def _landmark_pixels(pose: Pose, g: FaceGeometry, width: int, height: int) -> tuple[int, ...]:
    pixels = np.rint(pose.to_pixels(g.landmark_points()))
    pixels = np.clip(pixels, 0, [width - 1, height - 1]).astype(np.int64)
    return tuple(int(v) for v in pixels.reshape(-1))


def _face_bbox(pose: Pose, g: FaceGeometry, width: int, height: int) -> tuple[int, int, int, int]:
    outline = pose.to_pixels(face_outline(g))
    x0, y0 = np.floor(outline.min(axis=0)).astype(int)
    x1, y1 = np.ceil(outline.max(axis=0)).astype(int)
    x0, y0 = max(0, int(x0)), max(0, int(y0))
    x1, y1 = min(width - 1, int(x1)), min(height - 1, int(y1))
    return (x0, y0, x1 - x0 + 1, y1 - y0 + 1)
