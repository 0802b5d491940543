"""Marks on the skin that are NOT targets, painted like lesions but never boxed, so a detector must learn
to leave them out:
    naevus   small dark round moles (common acquired naevi), sharp-edged, darker and rounder than a
             lentigo, rarer than freckles
    papule   acne papules: small raised red bumps with a blurred edge (erythema: green and blue absorbed)
    pustule  a papule with a yellow-white head
    pih      post-inflammatory hyperpigmentation: soft brown macules where acne healed, the colour of
             melasma and lentigines
    pie      post-inflammatory erythema: soft red-purple macules
Only worlds that ask for them (`World.confounders`) draw them, from the photo's confounders stream, after
the target lesions: they fall anywhere on clear skin, inside a target's box too (as acne does on a
melasma cheek), and no box ever moves for them (a box is the hull of its own lesion's pigment).
"""

from __future__ import annotations

import numpy as np

from annotator.synthetic.canvas import Canvas, Layer
from annotator.synthetic.lesions import darken
from annotator.synthetic.world import Confounders

KINDS = ("naevus", "papule", "pustule", "pih", "pie")

# RGB darkening per unit depth. A negative channel brightens: the pustule's head is yellow-white.
_NAEVUS = np.array([0.80, 0.88, 0.92], np.float32)
_RED = np.array([0.10, 0.50, 0.42], np.float32)
_HEAD = np.array([-0.30, -0.28, -0.12], np.float32)
_PIH = np.array([0.50, 0.70, 0.88], np.float32)
_PIE = np.array([0.18, 0.45, 0.30], np.float32)

# Where acne and its marks sit, as (weight, u, v, spread in u, spread in v): cheeks, chin, forehead.
_ACNE_ZONES = np.array(
    [
        (0.35, -0.45, 0.18, 0.15, 0.14),
        (0.35, 0.45, 0.18, 0.15, 0.14),
        (0.15, 0.0, 0.72, 0.16, 0.07),
        (0.15, 0.0, -0.45, 0.28, 0.09),
    ]
)
_PUSTULE_FRACTION = 0.3  # of acne lesions, those with a head


def draw_confounders(rng: np.random.Generator, canvas: Canvas, mix: Confounders) -> tuple[list[Layer], dict[str, int]]:
    """One layer per kind of mark drawn on this face, and how many marks of each kind it holds (a papule
    count includes the pustules' red bases). None in a world without confounders.

    The draws come in a fixed order: counts first, then each kind's places and sizes.
    """
    naevi = int(rng.poisson(mix.naevi))
    acne = int(rng.poisson(mix.acne)) if rng.random() < mix.acne_fraction else 0
    marks = int(rng.poisson(mix.marks)) if rng.random() < mix.marks_fraction else 0
    drawn = _naevi(rng, canvas, naevi) + _acne(rng, canvas, acne) + _marks(rng, canvas, marks)
    layers = [layer for layer, count in drawn if count]
    return layers, {kind: sum(count for layer, count in drawn if layer.label == kind) for kind in KINDS}


def paint_confounders(albedo: np.ndarray, layers: list[Layer], skin: np.ndarray) -> None:
    """Paint the marks over the albedo (3, h, w) on skin only, in place; no box comes of them."""
    for layer in layers:
        region = layer.region
        if region is not None:
            darken(albedo, layer, region, layer.alpha[region] * skin[region])


def _naevi(rng: np.random.Generator, canvas: Canvas, n: int) -> list[tuple[Layer, int]]:
    """Small, dark, round, sharp moles anywhere on the face."""
    u, v = _anywhere(rng, n)
    radius = canvas.unit * rng.uniform(1.4, 3.2, n)
    peaks = rng.uniform(0.85, 1.0, n)
    return [_dots(canvas, "naevus", rng.uniform(0.60, 0.85), _NAEVUS, u, v, radius, peaks, canvas.sharp)]


def _acne(rng: np.random.Generator, canvas: Canvas, n: int) -> list[tuple[Layer, int]]:
    """Red papules with a blurred edge on cheeks, chin and forehead; some with a yellow-white head."""
    u, v = _in_acne_zones(rng, n)
    radius = canvas.unit * rng.uniform(1.5, 3.2, n)
    peaks = rng.uniform(0.6, 1.0, n)
    headed = rng.random(n) < _PUSTULE_FRACTION
    papules = _dots(canvas, "papule", rng.uniform(0.30, 0.55), _RED, u, v, radius, peaks, 2.5 * canvas.sharp)
    head_radius = np.maximum(0.45 * radius[headed], 0.8)
    heads = _dots(canvas, "pustule", rng.uniform(0.5, 0.9), _HEAD, u[headed], v[headed], head_radius, peaks[headed])
    return [papules, heads]


def _marks(rng: np.random.Generator, canvas: Canvas, n: int) -> list[tuple[Layer, int]]:
    """Soft brown (hyperpigmentation) and red (erythema) macules where acne healed."""
    u, v = _in_acne_zones(rng, n)
    radius = canvas.unit * rng.uniform(2.0, 5.0, n)
    peaks = rng.uniform(0.6, 1.0, n)
    brown = rng.random(n) < 0.6
    soft = 0.5 * float(radius.mean()) if n else canvas.sharp
    return [
        _dots(canvas, "pih", rng.uniform(0.15, 0.35), _PIH, u[brown], v[brown], radius[brown], peaks[brown], soft),
        _dots(canvas, "pie", rng.uniform(0.15, 0.30), _PIE, u[~brown], v[~brown], radius[~brown], peaks[~brown], soft),
    ]


def _anywhere(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n places (u, v) spread over the face, inside its egg."""
    angle, dist = rng.uniform(0, 2 * np.pi, n), np.sqrt(rng.uniform(0, 1, n))
    return 0.85 * dist * np.cos(angle), 0.12 + 0.78 * dist * np.sin(angle)


def _in_acne_zones(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """n places (u, v) in the zones acne favours."""
    pick = _ACNE_ZONES[rng.choice(len(_ACNE_ZONES), size=n, p=_ACNE_ZONES[:, 0])]
    return pick[:, 1] + pick[:, 3] * rng.standard_normal(n), pick[:, 2] + pick[:, 4] * rng.standard_normal(n)


def _dots(
    canvas: Canvas,
    kind: str,
    depth: float,
    colour: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    radius: np.ndarray,
    peaks: np.ndarray,
    soft: float | None = None,
) -> tuple[Layer, int]:
    """One layer of round marks at face coordinates (u, v), each kept only where its centre is clear skin;
    with the number kept."""
    layer = Layer(kind, canvas, depth, colour)
    px, py = canvas.face.px(u, v)  # type: ignore[arg-type]  # numpy broadcasting through the scalar maths
    x, y = np.asarray(px, np.float32), np.asarray(py, np.float32)
    h, w = canvas.skin.shape
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    on_skin = inside.copy()
    on_skin[inside] = canvas.skin[y[inside].astype(int), x[inside].astype(int)] >= 0.98
    layer.dots(
        x[on_skin],
        y[on_skin],
        np.maximum(radius[on_skin], 0.8).astype(np.float32),
        peaks[on_skin].astype(np.float32),
        soft=canvas.sharp if soft is None else soft,
    )
    return layer, int(on_skin.sum())
