"""The six pigmented-lesion classes, drawn as opacity layers over the free skin, and the rule that boxes them.

How the boxes are drawn, as a dermatologist would draw them in labelImg:
    sl    one box per discrete macule (1-4 darker, larger, well-defined brown macules anywhere on the face)
    caf   one box per spot (a single uniform light-brown oval with a sharp smooth border)
    fre   one box per cluster region: the dots on each side of the facial midline (that cheek plus
          that half of the nose); a single box when one side has fewer than 3 dots
    mel   one box per patch: one per cheek, plus one on the forehead when present
    hori  one box per side: the speckles on each cheekbone
    ota   one box around the whole one-sided patch (around the eye, out to temple and cheek)
A box is the tight hull of the pixels the lesion visibly changes (some colour channel darkened by at
least `VISIBLE` of the skin's value), after hair, eyes, brows, nostrils and mouth are masked out. The
rule reads the lesion's own pigment as drawn, before light and camera: overlapping lesions, marks that
are not targets (confounders.py), blur, grain and JPEG never move a box, and a face without lesions
has no box.

The confusable pairs differ by texture, not by colour or place: melasma is a blurred, continuous
(mottled) patch where Hori's nevus is grey-brown speckles (sometimes over a faint haze); freckles
are many small light dots where lentigines are a few larger dark macules (parameter ranges overlap
at the edges). In a world with shared pigments (the hard one) each pair also draws its colour and
depth from one distribution (`shared_pigment`), so colour tells neither pair apart; a world may show
melasma and Hori's nevus on one face (`choose_classes`), their patches free to overlap.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from annotator.classes import CLASS_NAMES
from annotator.synthetic.canvas import Canvas, Face, Layer
from annotator.synthetic.world import World
from annotator.types import Box

VISIBLE = 0.04  # a pixel belongs to a lesion when the pigment darkens some channel by >= 4 %

# Each face-wide class covers a region (cheeks, one side) and so appears at most once per photo;
# the discrete ones (sl, caf) are placed around them.
FACE_WIDE = ("fre", "mel", "hori", "ota")
DISCRETE = ("sl", "caf")

# Per-channel darkening per unit of pigment depth: epidermal melanin is brown (blue absorbed most),
# dermal melanin looks blue-grey (Tyndall effect: red absorbed most).
_BROWN = np.array([0.55, 0.75, 0.90], np.float32)
_CAF = np.array([0.45, 0.65, 0.90], np.float32)
_GREY_BROWN = np.array([0.75, 0.78, 0.65], np.float32)
_BLUE_GREY = np.array([1.00, 0.78, 0.38], np.float32)


def choose_classes(rng: np.random.Generator, world: World, extra: np.random.Generator) -> tuple[str, ...]:
    """The classes one photo shows: one, or a face-wide class with one or both discrete ones.

    Then, from `extra` (two draws, always): none at all on a lesion-free face, and melasma with Hori's
    nevus where the face shows one of them and the world shows both together.
    """
    classes = _main_classes(rng, world)
    lesion_free, both = extra.random(), extra.random()
    if lesion_free < world.lesion_free_fraction:
        return ()
    if both < world.mel_with_hori_fraction and len({"mel", "hori"} & set(classes)) == 1:
        return (*classes, "hori" if "mel" in classes else "mel")
    return classes


def _main_classes(rng: np.random.Generator, world: World) -> tuple[str, ...]:
    """The default world's draw: one class, or a face-wide class with one or both discrete ones."""
    roll = rng.random()
    if roll < world.one_class_below:
        names = [name for name, _ in world.single_class_weights]
        return (names[rng.choice(len(names), p=[weight for _, weight in world.single_class_weights])],)
    face_wide = FACE_WIDE[rng.integers(len(FACE_WIDE))]
    if roll < world.two_classes_below:
        return face_wide, DISCRETE[rng.integers(len(DISCRETE))]
    return face_wide, "caf", "sl"


def draw_lesions(rng: np.random.Generator, canvas: Canvas, classes: tuple[str, ...]) -> list[Layer]:
    """One layer per box of every class in `classes`, face-wide classes first so discrete ones avoid them."""
    layers: list[Layer] = []
    for label in sorted(classes, key=lambda name: (name not in FACE_WIDE, name)):  # face-wide first
        new = _DRAWERS[label](rng, canvas)
        for layer in new:
            region = layer.region
            if region is not None:
                canvas.occupied.append((region[1].start, region[0].start, region[1].stop, region[0].stop))
        layers.extend(new)
    return layers


def pigment_skin(albedo: np.ndarray, layers: list[Layer], skin: np.ndarray) -> list[Box]:
    """Darken the albedo (3, h, w) under each visible layer, in place; returns one box per visible layer."""
    boxes: list[Box] = []
    for layer in layers:
        region = layer.region
        if region is None:
            continue
        alpha = layer.alpha[region] * skin[region]
        box = _hull(alpha, layer.depth * float(layer.colour.max()), region, layer.label)
        if box is None:
            continue
        boxes.append(box)
        darken(albedo, layer, region, alpha)
    return boxes


def darken(albedo: np.ndarray, layer: Layer, region: tuple[slice, slice], alpha: np.ndarray) -> None:
    """albedo (3, h, w) *= 1 - opacity * depth * colour over the layer's region, in place (a negative
    colour channel brightens it)."""
    pigment = (np.float32(layer.depth) * layer.colour)[:, None, None]
    albedo[:, region[0], region[1]] *= np.float32(1.0) - alpha[None] * pigment


def shared_pigment(rng: np.random.Generator, label: str) -> tuple[float, np.ndarray]:
    """(depth, RGB darkening per unit depth) of a confusable lesion in a world with shared pigments.

    Melasma and Hori's nevus draw from one distribution (brown to grey-brown, one depth range), and so do
    freckles and solar lentigines (brown with a slight hue jitter), so colour alone tells neither pair apart.
    """
    if label in ("mel", "hori"):
        depth, mix = rng.uniform(0.22, 0.48), np.float32(rng.uniform(0.0, 1.0))
        return depth, (_BROWN + (_GREY_BROWN - _BROWN) * mix).astype(np.float32)
    if label in ("fre", "sl"):
        return rng.uniform(0.28, 0.55), (_BROWN * (1.0 + rng.uniform(-0.06, 0.06, 3))).astype(np.float32)
    raise ValueError(f"{label!r} has no confusable partner with a shared pigment")


def _pigment(canvas: Canvas, label: str, depth: float, colour: np.ndarray) -> tuple[float, np.ndarray]:
    """The class's own (depth, colour), or a shared one where the canvas's world shares pigments."""
    if canvas.shared_pigments is None:
        return depth, colour
    return shared_pigment(canvas.shared_pigments, label)


def _hull(alpha: np.ndarray, strength: float, region: tuple[slice, slice], label: str) -> Box | None:
    """Tight box around the visible pixels of one lesion; None when nothing is visible."""
    visible = alpha * np.float32(strength) >= VISIBLE
    rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
    if len(rows) == 0 or rows[-1] - rows[0] < 1 or cols[-1] - cols[0] < 1:
        return None
    y0, x0 = region[0].start, region[1].start
    return Box(label, float(x0 + cols[0]), float(y0 + rows[0]), float(x0 + cols[-1] + 1), float(y0 + rows[-1] + 1))


# ---- the six classes ---------------------------------------------------------------------


def _draw_fre(rng: np.random.Generator, canvas: Canvas) -> list[Layer]:
    """Freckles: 15-40 small light-brown dots in a butterfly over the nose and both cheeks."""
    n = int(rng.integers(15, 41))
    edge_case = rng.random() < 0.15  # fewer, larger, darker dots: nearer lentigines
    where = rng.choice(3, size=n, p=[0.2, 0.4, 0.4])  # nose, left cheek, right cheek
    side = np.where(where == 1, -1.0, 1.0)
    u = np.where(where == 0, rng.normal(0.0, 0.07, n), side * np.clip(np.abs(rng.normal(0.42, 0.13, n)), 0.15, 0.72))
    v = np.where(where == 0, rng.uniform(-0.05, 0.27, n), np.clip(rng.normal(0.16, 0.10, n), -0.02, 0.40))
    radius = canvas.unit * (rng.uniform(2.0, 3.2, n) if edge_case else rng.uniform(1.2, 2.6, n))
    radius = np.maximum(radius, 0.9).astype(np.float32)
    peaks = rng.uniform(0.6, 1.0, n).astype(np.float32)
    depth, colour = _pigment(canvas, "fre", rng.uniform(0.40, 0.50) if edge_case else rng.uniform(0.22, 0.40), _BROWN)
    left = u < 0
    groups = [left, ~left] if min(left.sum(), (~left).sum()) >= 3 else [np.ones(n, bool)]
    layers = []
    for members in groups:
        layer = Layer("fre", canvas, depth, colour)
        x, y = _to_px(canvas.face, u[members], v[members])
        layer.dots(x, y, radius[members], peaks[members], soft=canvas.sharp)
        layers.append(layer)
    return layers


def _draw_sl(rng: np.random.Generator, canvas: Canvas) -> list[Layer]:
    """Solar lentigines: 1-4 larger, darker, well-defined irregular brown macules anywhere on the face."""
    layers = []
    for _ in range(int(rng.integers(1, 5))):
        edge_case = rng.random() < 0.2  # small and light: nearer a freckle
        rx = canvas.unit * (rng.uniform(3.0, 4.5) if edge_case else rng.uniform(4.5, 10.0))
        ry = rx * rng.uniform(0.65, 1.0)
        wobble = tuple((k, rng.uniform(0.02, 0.10), rng.uniform(0, 2 * math.pi)) for k in (2, 3, 5))
        spot = _free_spot(rng, canvas, rx * 1.35)
        if spot is None:
            continue
        depth, colour = _pigment(
            canvas, "sl", rng.uniform(0.33, 0.42) if edge_case else rng.uniform(0.42, 0.70), _BROWN
        )
        layer = Layer("sl", canvas, depth, colour)
        layer.ellipse(spot[0], spot[1], rx, ry, rng.uniform(0, math.pi), canvas.sharp, wobble=wobble)
        canvas.occupied.append((spot[0] - rx * 1.3, spot[1] - rx * 1.3, spot[0] + rx * 1.3, spot[1] + rx * 1.3))
        layers.append(layer)
    return layers


def _draw_caf(rng: np.random.Generator, canvas: Canvas) -> list[Layer]:
    """Cafe-au-lait spot: one uniform light-brown oval with a sharp, smooth border."""
    rx = canvas.unit * rng.uniform(9.0, 22.0)
    ry = rx * rng.uniform(0.55, 0.9)
    for scale in (1.0, 0.7, 0.5):  # shrink when the face is crowded
        spot = _free_spot(rng, canvas, rx * scale)
        if spot is not None:
            layer = Layer("caf", canvas, rng.uniform(0.26, 0.40), _CAF)
            layer.ellipse(spot[0], spot[1], rx * scale, ry * scale, rng.uniform(0, math.pi), canvas.sharp)
            return [layer]
    return []


def _draw_mel(rng: np.random.Generator, canvas: Canvas) -> list[Layer]:
    """Melasma: symmetric blurred-edge mottled brown patches on both cheeks, sometimes the forehead."""
    face = canvas.face
    depth, colour = _pigment(canvas, "mel", rng.uniform(0.20, 0.40), _BROWN)
    mottle = rng.uniform(0.45, 0.7) if rng.random() < 0.2 else rng.uniform(0.15, 0.4)  # blotchy: nearer Hori's
    cu, cv = rng.uniform(0.36, 0.48), rng.uniform(0.08, 0.22)
    rx, ry = face.a * rng.uniform(0.18, 0.30), face.b * rng.uniform(0.12, 0.20)
    blur = rng.uniform(0.5, 0.9)
    patches = [
        (
            side * (cu + rng.uniform(-0.03, 0.03)),
            cv + rng.uniform(-0.03, 0.03),
            rx * rng.uniform(0.9, 1.1),
            ry * rng.uniform(0.9, 1.1),
            side * rng.uniform(-0.4, 0.1),
        )
        for side in (-1, 1)
    ]
    if rng.random() < 0.25:
        patches.append(
            (
                rng.uniform(-0.08, 0.08),
                rng.uniform(-0.42, -0.32),
                face.a * rng.uniform(0.2, 0.32),
                face.b * rng.uniform(0.07, 0.11),
                0.0,
            )
        )
    layers = []
    for pu, pv, prx, pry, angle in patches:
        layer = Layer("mel", canvas, depth, colour)
        x, y = face.px(pu, pv)
        layer.ellipse(x, y, prx, pry, face.roll + angle, soft=blur * min(prx, pry))
        layer.mottle(rng, mottle, cell=5 * canvas.unit)
        layers.append(layer)
    return layers


def _draw_hori(rng: np.random.Generator, canvas: Canvas) -> list[Layer]:
    """Hori's nevus: grey-brown small speckles on both cheekbones, sometimes over a faint haze."""
    face = canvas.face
    depth, colour = _pigment(canvas, "hori", rng.uniform(0.30, 0.50), _GREY_BROWN)
    cu, cv = rng.uniform(0.40, 0.52), rng.uniform(-0.01, 0.10)
    ru, rv = rng.uniform(0.10, 0.17), rng.uniform(0.06, 0.11)
    haze = rng.uniform(0.2, 0.4) if rng.random() < 0.35 else 0.0  # a blurred background: nearer melasma
    layers = []
    for side in (-1, 1):
        layer = Layer("hori", canvas, depth, colour)
        n = int(rng.integers(15, 41))
        angle, dist = rng.uniform(0, 2 * math.pi, n), np.sqrt(rng.uniform(0, 1, n))
        u = side * (cu + rng.uniform(-0.02, 0.02)) + ru * dist * np.cos(angle)
        v = cv + rng.uniform(-0.02, 0.02) + rv * dist * np.sin(angle)
        x, y = _to_px(face, u, v)
        radius = np.maximum(canvas.unit * rng.uniform(1.0, 2.2, n), 0.8).astype(np.float32)
        layer.dots(x, y, radius, rng.uniform(0.55, 1.0, n).astype(np.float32), soft=canvas.sharp)
        if haze:
            hx, hy = face.px(side * cu, cv)
            hrx, hry = ru * face.a, rv * face.b
            layer.ellipse(hx, hy, hrx, hry, face.roll, soft=0.6 * min(hrx, hry), peak=haze)
        layers.append(layer)
    return layers


def _draw_ota(rng: np.random.Generator, canvas: Canvas) -> list[Layer]:
    """Nevus of Ota: one-sided blue-grey mottled patch around one eye, out to the temple and cheek."""
    face = canvas.face
    side = -1 if rng.random() < 0.5 else 1
    layer = Layer("ota", canvas, rng.uniform(0.35, 0.55), _BLUE_GREY)
    parts = [(0.37, -0.12, 0.26, 0.17)]  # around the eye: (u, v, rx in a, ry in b)
    if rng.random() < 0.8:
        parts.append((0.72, -0.28, rng.uniform(0.14, 0.22), rng.uniform(0.14, 0.22)))  # temple
    if rng.random() < 0.7:
        parts.append((0.45, 0.14, rng.uniform(0.16, 0.24), rng.uniform(0.12, 0.18)))  # cheek
    if rng.random() < 0.3:
        parts.append((0.30, -0.38, rng.uniform(0.12, 0.2), rng.uniform(0.08, 0.12)))  # forehead
    for pu, pv, pru, prv in parts:
        x, y = face.px(side * (pu + rng.uniform(-0.04, 0.04)), pv + rng.uniform(-0.03, 0.03))
        rx, ry = pru * face.a * rng.uniform(0.85, 1.15), prv * face.b * rng.uniform(0.85, 1.15)
        layer.ellipse(
            x,
            y,
            rx,
            ry,
            face.roll + rng.uniform(-0.5, 0.5),
            soft=rng.uniform(0.4, 0.7) * min(rx, ry),
            peak=rng.uniform(0.75, 1.0),
        )
    layer.mottle(rng, rng.uniform(0.3, 0.5), cell=3 * canvas.unit)
    return [layer]


_DRAWERS: dict[str, Callable[[np.random.Generator, Canvas], list[Layer]]] = {
    "sl": _draw_sl,
    "fre": _draw_fre,
    "mel": _draw_mel,
    "caf": _draw_caf,
    "ota": _draw_ota,
    "hori": _draw_hori,
}
assert set(_DRAWERS) == set(CLASS_NAMES), "the renderer draws exactly the six PSL classes"
assert set(FACE_WIDE) | set(DISCRETE) == set(CLASS_NAMES), "every class is face-wide or discrete"


def _to_px(face: Face, u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = face.px(u, v)  # type: ignore[arg-type]  # numpy broadcasting through the scalar maths
    return np.asarray(x, np.float32), np.asarray(y, np.float32)


def _free_spot(rng: np.random.Generator, canvas: Canvas, reach: float) -> tuple[float, float] | None:
    """A centre (px) for a discrete lesion: on clear skin and clear of other lesions; None after 40 tries."""
    h, w = canvas.skin.shape
    for _ in range(40):
        u, v = rng.uniform(-0.85, 0.85), rng.uniform(-0.60, 0.85)
        if u * u + v * v > 0.8:
            continue
        x, y = canvas.face.px(u, v)
        x0, x1, y0, y1 = int(x - reach), int(x + reach) + 1, int(y - reach), int(y + reach) + 1
        if x0 < 0 or y0 < 0 or x1 > w or y1 > h:
            continue
        if canvas.skin[y0:y1, x0:x1].min() < 0.98:
            continue
        if any(ox0 < x1 and x0 < ox1 and oy0 < y1 and y0 < oy1 for ox0, oy0, ox1, oy1 in canvas.occupied):
            continue
        return x, y
    return None
