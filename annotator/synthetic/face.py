"""The head: face, neck and hair shapes, the features (eyes, brows, nostrils, nose shade, mouth), the skin
(its Fitzpatrick tone, its lesions, the marks that are not targets), Lambert lighting on the face, and the
hair's sheen, painted over the background.

`draw_head` is the list of those steps; each draws from the photo's generators in a fixed order (the main
one as the default world always has; pigments and confounders from their own streams), so the same
(seed, photo) gives the same head.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from annotator.synthetic.canvas import Canvas, Face, ellipse, ellipse_bounds, smooth_noise, window
from annotator.synthetic.confounders import draw_confounders, paint_confounders
from annotator.synthetic.lesions import draw_lesions, pigment_skin
from annotator.synthetic.streams import Streams
from annotator.synthetic.world import FITZPATRICK_TONES, World
from annotator.types import Box


@dataclass(frozen=True)
class Head:
    """What a drawn head holds: the lesion boxes (img's frame), its skin's Fitzpatrick type and luma (0-255,
    before light), and how many marks that are not targets of each kind (see confounders.py) it shows."""

    boxes: list[Box]
    skin_type: int
    skin_luma: float
    confounders: dict[str, int]


def draw_head(streams: Streams, img: np.ndarray, face: Face, classes: tuple[str, ...], world: World) -> Head:
    """Paint hair, face (with lesions, marks and features) and neck over the background img (3, h, w), in place."""
    rng = streams.main
    _, h, w = img.shape
    unit = face.a / 100.0  # 1 % of the face half-width, in px; sharp edges stay ~1 px at any scale
    sharp = max(0.7, 0.8 * face.a / 110.0)
    shape = _head_shape(rng, face, h, w)
    hair_colour = _hair_colour(rng)
    features = _Features(face, h, w, sharp)
    _add_eyes_brows_and_nostrils(rng, features, unit, hair_colour)
    light_u = rng.uniform(*world.lighting.side)  # horizontal light direction, also sets which side the nose shades
    nose_side = -0.09 * np.sign(light_u or 1.0)  # the nose's shadow falls away from the light
    features.shade(nose_side, 0.10, 4.5 * unit, 0.17 * face.b, 0.88, soft=4 * sharp)
    _add_mouth(rng, features, unit)
    # lesion-able skin: the face minus hair and the margins around eyes, brows, nostrils and mouth
    skin = shape.face * (np.float32(1.0) - shape.hair) * (np.float32(1.0) - features.block)
    albedo, texture_noise, skin_type, skin_luma = _skin_albedo(rng, h, w, unit, world)
    pigments = streams.pigment if world.shared_pigments else None
    canvas = Canvas(face, skin, unit, sharp, occupied=[], shared_pigments=pigments)
    boxes = pigment_skin(albedo, draw_lesions(rng, canvas, classes), skin)
    marks, confounders = draw_confounders(streams.confounders, canvas, world.confounders)
    paint_confounders(albedo, marks, skin)
    features.paint(albedo)
    _light(rng, albedo, shape, light_u, world)
    _paint_skin(img, albedo, shape)
    _paint_hair(rng, img, shape.hair, hair_colour, texture_noise, scratch=albedo)
    return Head(boxes, skin_type, skin_luma, confounders)


@dataclass(frozen=True)
class _HeadShape:
    """Per-pixel geometry of the head, each (h, w) float32.

    u, v: face coordinates (see `Face`); uj: u widened towards the narrower jaw; r2: the squared egg radius
    (< 1 inside the face). face, neck, hair: their opacities.
    """

    u: np.ndarray
    v: np.ndarray
    uj: np.ndarray
    r2: np.ndarray
    face: np.ndarray
    neck: np.ndarray
    hair: np.ndarray


def _head_shape(rng: np.random.Generator, face: Face, h: int, w: int) -> _HeadShape:
    """The face an egg (narrower at the jaw), the neck below, hair above and at the sides."""
    a, b = face.a, face.b
    xs = np.arange(w, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(h, dtype=np.float32) + np.float32(0.5)
    c, s = np.float32(math.cos(face.roll)), np.float32(math.sin(face.roll))
    dx, dy = xs[None, :] - np.float32(face.cx), ys[:, None] - np.float32(face.cy)
    u = (dx * c + dy * s) / np.float32(a)  # (h, w)
    v = (dy * c - dx * s) / np.float32(b)  # (h, w)

    jaw = np.float32(1.0) - np.float32(0.16) * np.clip(v, 0.0, 1.0)
    uj = u / jaw
    r2 = uj * uj + v * v
    face_alpha = np.clip((np.float32(1.0) - np.sqrt(r2)) * np.float32(a / 1.2) + np.float32(0.5), 0.0, 1.0)
    neck_half = rng.uniform(0.40, 0.50)
    neck_alpha = np.clip((np.float32(neck_half) - np.abs(u)) * np.float32(a / 1.2) + np.float32(0.5), 0.0, 1.0)
    neck_alpha *= v > 0.55
    hairline = rng.uniform(-0.70, -0.52)
    wave_amp, wave_freq, wave_phase = rng.uniform(0.0, 0.06), rng.uniform(3.0, 8.0), rng.uniform(0, 2 * math.pi)
    us = face.frontal_u(u)  # the hairline follows a turned head
    hair_line_v = hairline + 0.30 * us * us + wave_amp * np.sin(wave_freq * us + wave_phase)
    hair_outer = np.clip(
        (1.0 - np.sqrt((u / 1.13) ** 2 + ((v + 0.06) / 1.14) ** 2)) * np.float32(a / 1.5) + 0.5, 0.0, 1.0
    )
    hair_bottom = rng.uniform(-0.15, 0.55)
    above_line = np.clip((hair_line_v - v) * np.float32(b / 1.5) + np.float32(0.5), 0.0, 1.0)
    sides = (np.float32(1.0) - face_alpha) * np.clip((np.float32(hair_bottom) - v) * np.float32(b / 3.0) + 0.5, 0, 1)
    hair = hair_outer * np.maximum(above_line, sides)
    return _HeadShape(u=u, v=v, uj=uj, r2=r2, face=face_alpha, neck=neck_alpha, hair=hair)


def _hair_colour(rng: np.random.Generator) -> np.ndarray:
    """A dark brown to black hair colour (RGB float32); the brows take it too."""
    return np.float32(rng.uniform(18, 70)) * np.array([1.0, rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.8)], np.float32)


@dataclass(frozen=True)
class _Mark:
    """One feature ellipse to paint over the skin: its window, opacity, and either a colour or a shade."""

    rows: slice
    cols: slice
    alpha: np.ndarray
    colour: np.ndarray | None  # RGB to paint; None: darken to `keep` of the skin, keeping its hue
    keep: float


class _Features:
    """The face's features, collected before the skin is drawn: marks to paint later (in order), and `block`,
    the (h, w) opacity of margins around eyes, brows, nostrils and mouth that lesions keep off."""

    def __init__(self, face: Face, h: int, w: int, sharp: float) -> None:
        self.face, self.h, self.w, self.sharp = face, h, w, sharp
        self.marks: list[_Mark] = []
        self.block = np.zeros((h, w), np.float32)

    def paint(self, albedo: np.ndarray) -> None:
        """Paint every mark over the albedo (3, h, w), in place, in the order added."""
        for mark in self.marks:
            if mark.colour is None:  # darken, keep the skin's hue
                albedo[:, mark.rows, mark.cols] *= np.float32(1.0) - mark.alpha[None] * np.float32(1.0 - mark.keep)
            else:
                target = albedo[:, mark.rows, mark.cols]
                target += (mark.colour[:, None, None] - target) * mark.alpha[None]

    def colour(
        self,
        u0: float,
        v0: float,
        rx: float,
        ry: float,
        colour: tuple[float, float, float] | np.ndarray,
        *,
        soft: float | None = None,
        block_scale: float = 0.0,
        angle: float = 0.0,
    ) -> None:
        """An ellipse of `colour` at face coordinates (u0, v0), radii in px; see `_add`."""
        self._add(u0, v0, rx, ry, np.asarray(colour, np.float32), 1.0, soft, block_scale, angle)

    def shade(
        self,
        u0: float,
        v0: float,
        rx: float,
        ry: float,
        keep: float,
        *,
        soft: float | None = None,
        block_scale: float = 0.0,
    ) -> None:
        """An ellipse that darkens the skin to `keep` of its value; see `_add`."""
        self._add(u0, v0, rx, ry, None, keep, soft, block_scale, 0.0)

    def _add(
        self,
        u0: float,
        v0: float,
        rx: float,
        ry: float,
        colour: np.ndarray | None,
        keep: float,
        soft: float | None,
        block_scale: float,
        angle: float,
    ) -> None:
        """soft: edge width in px (default sharp); block_scale > 0 also keeps lesions off a margin around it."""
        face, sharp, w, h = self.face, self.sharp, self.w, self.h
        soft = sharp if soft is None else soft
        x, y = face.px(u0, v0)
        win = window(*ellipse_bounds(x, y, rx, ry, soft), w, h)
        if win is None:
            return
        alpha = ellipse(win[2], win[3], x, y, rx, ry, face.roll + angle, soft)
        self.marks.append(_Mark(win[0], win[1], alpha, colour, keep))
        if block_scale:
            brx, bry = rx * block_scale, ry * block_scale * 1.3
            bwin = window(*ellipse_bounds(x, y, brx, bry, sharp), w, h)
            if bwin is not None:
                balpha = ellipse(bwin[2], bwin[3], x, y, brx, bry, face.roll, sharp)
                np.maximum(self.block[bwin[0], bwin[1]], balpha, out=self.block[bwin[0], bwin[1]])


def _add_eyes_brows_and_nostrils(
    rng: np.random.Generator, features: _Features, unit: float, hair_colour: np.ndarray
) -> None:
    """Per side: the eye socket's shade, the eye (white, iris, pupil), the brow, the nostril."""
    sharp = features.sharp
    eye_u, eye_v = rng.uniform(0.33, 0.40), rng.uniform(-0.17, -0.08)
    eye_rx = 17 * unit * rng.uniform(0.9, 1.1)
    iris_colour = (rng.uniform(40, 80), rng.uniform(25, 50), rng.uniform(15, 35))
    for side in (-1, 1):
        features.shade(side * eye_u, eye_v - 0.015, eye_rx * 1.15, eye_rx * 0.55, 0.80, soft=3 * sharp, block_scale=1.3)
        features.colour(side * eye_u, eye_v, eye_rx, eye_rx * 0.42, (232, 226, 220))
        features.colour(side * eye_u, eye_v, eye_rx * 0.40, eye_rx * 0.40, iris_colour)
        features.colour(side * eye_u, eye_v, eye_rx * 0.17, eye_rx * 0.17, (15, 12, 12))
        features.colour(
            side * eye_u,
            eye_v - 0.175,
            eye_rx * 1.35,
            eye_rx * 0.24,
            hair_colour,
            soft=2 * sharp,
            block_scale=1.25,
            angle=side * -0.08,
        )
        features.shade(side * 0.075, 0.31, 4.2 * unit, 2.4 * unit, 0.45, soft=sharp * 1.5, block_scale=1.5)


def _add_mouth(rng: np.random.Generator, features: _Features, unit: float) -> None:
    """The lips and the dark line between them."""
    b, sharp = features.face.b, features.sharp
    mouth_v = rng.uniform(0.50, 0.58)
    lip = (rng.uniform(150, 190), rng.uniform(80, 105), rng.uniform(80, 100))
    features.colour(0.0, mouth_v, 26 * unit * rng.uniform(0.9, 1.1), 0.055 * b, lip, soft=1.5 * sharp, block_scale=1.25)
    features.colour(0.0, mouth_v, 24 * unit, 0.008 * b + 0.6, (70, 35, 35), soft=sharp)


def _skin_albedo(
    rng: np.random.Generator, h: int, w: int, unit: float, world: World
) -> tuple[np.ndarray, np.ndarray, int, float]:
    """The skin's albedo (3, h, w): a tone along the world's Fitzpatrick types with gentle low-frequency texture.

    Also returns the texture's noise field (h, w), stronger it gives the hair its sheen (skin and hair
    never overlap), the skin's Fitzpatrick type (the nearest of the world's) and the tone's luma.
    """
    tones = [np.array(FITZPATRICK_TONES[t], np.float32) for t in world.skin_types]
    # Uniform along the path through the tones; with two tones this is lightest + (darkest - lightest) * u.
    along = rng.uniform(0, 1) * (len(tones) - 1)
    step = min(int(along), len(tones) - 2)
    tone = tones[step] + (tones[step + 1] - tones[step]) * np.float32(along - step)
    tone = tone * (1.0 + rng.uniform(-0.03, 0.03, 3)).astype(np.float32)
    texture_noise = smooth_noise(rng, h, w, cell=12 * unit)
    albedo = tone[:, None, None] * (np.float32(1.0) + np.float32(0.035) * texture_noise)[None]  # (3, h, w)
    luma = float(np.dot(tone, np.array([0.299, 0.587, 0.114], np.float32)))
    return albedo, texture_noise, world.skin_types[round(along)], luma


def _light(rng: np.random.Generator, albedo: np.ndarray, shape: _HeadShape, light_u: float, world: World) -> None:
    """Lambert shading on an ellipsoid face, the neck in the chin's shadow; albedo (3, h, w) in place."""
    light = np.array([light_u, rng.uniform(*world.lighting.above), 1.0], np.float32)
    light /= np.linalg.norm(light)
    nz = np.sqrt(np.clip(np.float32(1.0) - shape.r2, 0.02, 1.0))  # with (uj, v), a unit normal inside the face
    diffuse = np.clip(shape.uj * light[0] + shape.v * light[1] + nz * light[2], 0.0, 1.0)
    neck_shade = np.float32(rng.uniform(0.55, 0.7))
    shade = np.float32(rng.uniform(*world.lighting.ambient)) + np.float32(0.62) * diffuse - neck_shade
    shade *= shape.face
    shade += neck_shade
    albedo *= shade[None]


def _paint_skin(img: np.ndarray, albedo: np.ndarray, shape: _HeadShape) -> None:
    """img += (albedo - img) * opacity of face and neck, in place; the albedo is used up as scratch."""
    # in place: (3, h, w) temporaries cost more than the arithmetic
    paint = albedo
    paint -= img
    paint *= np.maximum(shape.face, shape.neck)[None]
    img += paint


def _paint_hair(
    rng: np.random.Generator,
    img: np.ndarray,
    hair: np.ndarray,
    hair_colour: np.ndarray,
    texture_noise: np.ndarray,
    scratch: np.ndarray,
) -> None:
    """Hair over img (3, h, w), in place: its colour with a sheen and vertical strands; scratch (3, h, w) is reused."""
    _, _, w = img.shape
    strands = rng.standard_normal(w, dtype=np.float32)  # brightness per pixel column: vertical strands
    strands = (strands + np.roll(strands, 1) + np.roll(strands, -1))[None, :] * np.float32(0.06)
    hair_shine = np.float32(1.0) + np.float32(0.25) * texture_noise + strands
    np.multiply(hair_colour[:, None, None], hair_shine[None], out=scratch)
    scratch -= img
    scratch *= hair[None]
    img += scratch
